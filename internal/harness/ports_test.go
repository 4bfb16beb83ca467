package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// takePicked returns ctx with a hook that makes the first n ports a Start
// function picks unusable, as if another program had bound each right after
// the harness picked it (the race between test binaries that `go test -p 1`
// used to avoid), and a function that returns the ports taken so far.
func takePicked(ctx context.Context, t *testing.T, n int) (context.Context, func() []int) {
	var mu sync.Mutex
	var taken []int
	hook := func(port int) {
		mu.Lock()
		defer mu.Unlock()
		if len(taken) >= n {
			return
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Errorf("take port %d: %v", port, err)
			return
		}
		t.Cleanup(func() { l.Close() })
		taken = append(taken, port)
	}
	return context.WithValue(ctx, pickedHookKey{}, hook), func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(taken)
	}
}

// TestStartSurvivesTakenPort starts every server type with the first port(s)
// the harness picks taken by someone else: each must notice that it could not
// bind, start again on new ports, and work.
func TestStartSurvivesTakenPort(t *testing.T) {
	t.Parallel()
	type started struct {
		ports []int
		log   string
		close func() error
	}
	for _, tc := range []struct {
		name  string
		ports int // how many ports the server binds
		start func(context.Context) (started, error)
	}{
		{"postgres", 1, func(ctx context.Context) (started, error) {
			pg, err := StartPostgres(ctx, PostgresOptions{})
			if err != nil {
				return started{}, err
			}
			s := started{[]int{pg.Port()}, readFrom(pg.LogPath(), 0), pg.Close}
			return s, pg.Exec(ctx, "postgres", "SELECT 1")
		}},
		{"redis", 1, func(ctx context.Context) (started, error) {
			r, err := StartRedis(ctx, RedisOptions{})
			if err != nil {
				return started{}, err
			}
			return started{[]int{r.Port()}, readFrom(r.LogPath(), 0), r.Close}, r.Ping(ctx)
		}},
		{"nats", 1, func(ctx context.Context) (started, error) {
			n, err := StartNATS(ctx, NATSOptions{})
			if err != nil {
				return started{}, err
			}
			return started{[]int{n.Port()}, readFrom(n.LogPath(), 0), n.Close}, n.probe(ctx)
		}},
		{"kafka", 2, func(ctx context.Context) (started, error) {
			k, err := StartKafka(ctx, KafkaOptions{})
			if err != nil {
				return started{}, err
			}
			_, cport, _ := net.SplitHostPort(k.ControllerAddr())
			cp, _ := strconv.Atoi(cport)
			return started{[]int{k.Port(), cp}, readFrom(k.LogPath(), 0), k.Close}, k.probe(ctx)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			ctx, taken := takePicked(ctx, t, tc.ports)
			s, err := tc.start(ctx)
			if s.close != nil {
				t.Cleanup(func() { s.close() })
			}
			SkipIfNotInstalled(t, tc.name, err)
			if len(taken()) != tc.ports {
				t.Fatalf("took ports %v, want %d", taken(), tc.ports)
			}
			for _, p := range s.ports {
				if slices.Contains(taken(), p) {
					t.Errorf("server runs on port %d, which was taken", p)
				}
			}
			if !addrInUse(s.log) {
				t.Errorf("the log does not show the failed bind:\n%s", s.log)
			}
		})
	}
}

// TestStartGivesUpOnTakenPorts: when every port it picks is taken, a Start
// function stops after maxPortAttempts starts with ErrPortTaken; a port given
// in the options, or kept by a restart, is not replaced.
func TestStartGivesUpOnTakenPorts(t *testing.T) {
	t.Parallel()
	ctx, taken := takePicked(context.Background(), t, 100)
	_, err := StartRedis(ctx, RedisOptions{})
	if errors.Is(err, ErrNotInstalled) {
		SkipIfNotInstalled(t, "redis", err)
	}
	if !errors.Is(err, ErrPortTaken) || !strings.Contains(err.Error(), fmt.Sprintf("gave up after %d starts", maxPortAttempts)) {
		t.Fatalf("StartRedis with every port taken: err = %v, want ErrPortTaken", err)
	}
	if got := len(taken()); got != maxPortAttempts {
		t.Errorf("picked %d ports, want %d (one per start)", got, maxPortAttempts)
	}

	ctx = context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = StartRedis(ctx, RedisOptions{Port: l.Addr().(*net.TCPAddr).Port})
	if !errors.Is(err, ErrPortTaken) {
		t.Errorf("StartRedis on a taken Port: err = %v, want ErrPortTaken", err)
	}

	r, err := StartRedis(ctx, RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	l2, err := net.Listen("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := r.Start(ctx); !errors.Is(err, ErrPortTaken) || !strings.Contains(err.Error(), r.Addr()) {
		t.Errorf("Start after Stop with the port taken: err = %v, want ErrPortTaken naming %s", err, r.Addr())
	}
}

// reservedElsewhere reports whether port's reservation is held (by this or
// another process).
func reservedElsewhere(t *testing.T, port int) bool {
	l, err := net.Listen("unix", reservePrefix+strconv.Itoa(port))
	if err != nil {
		return true
	}
	l.Close()
	return false
}

// TestPortReservation (not parallel: it sets testCandidates, which every
// port pick reads): FreePort skips a port another test process reserved
// and picks outside the ephemeral range; a server's port stays reserved while
// the server is stopped (so that no other test process takes it during an
// outage) and is released by Close.
func TestPortReservation(t *testing.T) {
	// Another process's reservation, made the way reservePort makes it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other := l.Addr().(*net.TCPAddr).Port
	l.Close()
	hold, err := net.Listen("unix", reservePrefix+strconv.Itoa(other))
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	testCandidates = []int{other}
	t.Cleanup(func() { testCandidates = nil })
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if p == other {
		t.Fatalf("FreePort returned %d, reserved by another process", p)
	}
	if !reservedElsewhere(t, p) {
		t.Errorf("FreePort's port %d is not reserved", p)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && p >= lo && p <= hi {
			t.Errorf("FreePort returned %d, in the ephemeral range %d-%d", p, lo, hi)
		}
	}

	ctx := context.Background()
	r, err := StartRedis(ctx, RedisOptions{})
	SkipIfNotInstalled(t, "redis", err)
	defer r.Close()
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if !reservedElsewhere(t, r.Port()) {
		t.Errorf("port %d of a stopped server is not reserved", r.Port())
	}
	testCandidates = []int{r.Port()}
	if p, err := FreePort(); err != nil || p == r.Port() {
		t.Errorf("FreePort = %d, %v; want a port other than the stopped server's", p, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if reservedElsewhere(t, r.Port()) {
		t.Errorf("port %d still reserved after Close", r.Port())
	}
}
