package test

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// peakRSS returns a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, os.ErrNotExist
}

// Acceptance: one transaction of 1,000,000 outbox rows streams through with
// memory that does not grow with the transaction. (make bench reports the
// figure; the test only guards against unbounded growth.)
func TestMillionRowTransaction(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const n = 1_000_000
	e := newEnv(t, "")
	p := e.start()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data)
	        SELECT 'big.tx', '/big', 'a' || (g % 20), jsonb_build_object('seq', g) FROM generate_series(0, $1::int - 1) g`, n)
	end := e.currentLSN()
	waitFor(t, 5*time.Minute, "1,000,000 events", func() bool { return e.countLines() >= n })
	waitFor(t, 30*time.Second, "the slot to confirm the transaction", func() bool { c, _ := e.slot(); return c >= end })
	rss, err := peakRSS(p.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	p.stop(t)

	// Every seq exactly once, in insert order.
	f, err := os.Open(e.outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	next := 0
	for sc.Scan() {
		line := sc.Bytes()
		i := bytes.Index(line, []byte(`"data":{"seq": `))
		if i < 0 {
			t.Fatalf("line %d has no seq: %s", next, line)
		}
		rest := line[i+len(`"data":{"seq": `):]
		seq, err := strconv.Atoi(string(rest[:bytes.IndexByte(rest, '}')]))
		if err != nil || seq != next {
			t.Fatalf("line %d: seq %s, want %d", next, rest, next)
		}
		next++
	}
	if next != n {
		t.Fatalf("read %d events, want %d", next, n)
	}
	t.Logf("peak RSS while streaming a %d-row transaction: %.1f MiB", n, float64(rss)/(1<<20))
	if rss > 200<<20 {
		t.Fatalf("peak RSS %d MiB: memory grows with the transaction", rss>>20)
	}
}
