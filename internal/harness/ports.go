package harness

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// How ports are chosen, so that test binaries of different packages can run
// at the same time (go test -p N):
//
//   - Candidates are drawn at random from a range outside the kernel's
//     ephemeral port range (net.ipv4.ip_local_port_range), so neither an
//     outgoing connection nor another program's listen on port 0 can hold
//     a port between the pick and the server's bind.
//   - A picked port is reserved across processes by an abstract Unix socket
//     named after it (Linux; same network namespace as the TCP port). Another
//     test process using this harness skips a reserved port, also while the
//     server that owns it is stopped for an outage test. The kernel drops the
//     reservation when the process exits, however it exits.
//   - A port can still be taken by a program that does not use the harness.
//     The Start functions then pick new ports and start again (at most
//     maxPortAttempts times); see ErrPortTaken.

// ErrPortTaken is wrapped by the error of a server start that failed because
// the server could not bind its port ("address already in use"). The Start
// functions pick another port and try again when they chose the port
// themselves; they return it after maxPortAttempts tries, when the port was
// given in the options, and from Start after Stop or Kill (a restarted
// server keeps its port, which another program took in the meantime).
var ErrPortTaken = errors.New("port taken by another program")

// maxPortAttempts bounds the starts of one Start function that end in
// ErrPortTaken.
const maxPortAttempts = 5

// reservePrefix names the abstract Unix socket that reserves a port.
const reservePrefix = "@outbox-cdc-harness-port-"

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}         // every port this process handed out
	portHolds = map[int]net.Listener{} // the reservation of each port still held

	rangeOnce          sync.Once
	rangeLo, rangeHigh int // candidate range; rangeLo 0: ask the kernel (port 0)

	// Test hook: candidates tried before random ones.
	testCandidates []int
)

// pickedHookKey is the context key of a test hook that a Start function
// calls with each port it picks, before the server starts on it.
type pickedHookKey struct{}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on and that
// no other process using this harness holds. The port stays reserved for
// this process until it exits and is never handed out twice by it, so it
// suits a listener the test starts itself (an HTTP address, a server that
// must not answer). The Start functions use their own reservations, which
// Close releases.
func FreePort() (int, error) {
	return reservePort()
}

// reservePort picks a port and reserves it; see FreePort.
func reservePort() (int, error) {
	rangeOnce.Do(pickRange)
	portsMu.Lock()
	defer portsMu.Unlock()
	var last error
	for i := 0; i < 200; i++ {
		port, err := candidate()
		if err != nil {
			return 0, fmt.Errorf("find free port: %w", err)
		}
		if port == 0 || portsUsed[port] {
			continue
		}
		hold, err := net.Listen("unix", reservePrefix+strconv.Itoa(port))
		if err != nil {
			last = fmt.Errorf("port %d is reserved by another test process: %w", port, err)
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			hold.Close()
			last = err
			continue
		}
		l.Close()
		portsUsed[port] = true
		portHolds[port] = hold
		return port, nil
	}
	return 0, fmt.Errorf("find free port: no usable port in %d-%d after 200 tries (last: %v)", rangeLo, rangeHigh, last)
}

// releasePort drops the reservation of port (which stays used by this
// process).
func releasePort(port int) {
	portsMu.Lock()
	defer portsMu.Unlock()
	if l, ok := portHolds[port]; ok {
		l.Close()
		delete(portHolds, port)
	}
}

// candidate returns the next port to try: a test candidate, a random one
// from the range, or one the kernel picks.
func candidate() (int, error) {
	if len(testCandidates) > 0 {
		p := testCandidates[0]
		testCandidates = testCandidates[1:]
		return p, nil
	}
	if rangeLo > 0 {
		return rangeLo + rand.IntN(rangeHigh-rangeLo+1), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pickRange sets the candidate range to the wider of the two stretches of
// 10000-65535 below and above the ephemeral range. With less than 1000 ports
// there, the kernel picks (rangeLo stays 0).
func pickRange() {
	lo, hi := 32768, 60999 // Linux default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			l, err1 := strconv.Atoi(f[0])
			h, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && l <= h {
				lo, hi = l, h
			}
		}
	}
	const floor, ceil = 10000, 65535
	below := lo - floor // ports floor..lo-1
	above := ceil - hi  // ports hi+1..ceil
	switch {
	case below >= above && below >= 1000:
		rangeLo, rangeHigh = floor, lo-1
	case above > below && above >= 1000:
		rangeLo, rangeHigh = hi+1, ceil
	}
}

// addrInUse reports whether a server's log output says it could not bind
// its address. PostgreSQL ("could not bind IPv4 address ...: Address already
// in use"), redis-server ("Could not create server TCP listening socket
// ...: bind: Address already in use"), nats-server ("Error listening on
// port: ... bind: address already in use") and Kafka ("Socket server failed
// to bind to ...: Address already in use") all say it with the C library's
// or Go's text of EADDRINUSE.
func addrInUse(log string) bool {
	return strings.Contains(strings.ToLower(log), "address already in use")
}
