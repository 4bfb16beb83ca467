package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clockTick is USER_HZ, the unit of the times in /proc/<pid>/stat: 100 on
// every Linux architecture Go supports.
const clockTick = 100

// procCPU returns the user+system CPU seconds of pid so far and its start
// time in seconds since boot; ok is false when the process is gone.
func procCPU(pid int) (cpu, start float64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid ...: comm may contain spaces; the fields after
	// it start with state (field 3), so utime (14) is f[11], stime (15)
	// f[12] and starttime (22) f[19].
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, false
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	s, _ := strconv.ParseFloat(f[19], 64)
	return (ut + st) / clockTick, s / clockTick, true
}

// uptime returns the seconds since boot (/proc/uptime).
func uptime() float64 {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	up, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return up
}

// walsender samples the CPU of the walsender serving a slot: the backend
// that pg_stat_replication lists with the slot's active_pid. Its busy
// fraction is the CPU it used over its life (it starts with the drain's
// connection and serves only it), read every few milliseconds so that the
// last sample before it exits counts.
type walsender struct {
	mu      sync.Mutex
	pid     int
	start   float64 // seconds since boot
	cpu     float64 // at the last sample
	sampled float64 // seconds since boot of the last sample
	stop    chan struct{}
	done    chan struct{}
}

// watchWalsender starts sampling the walsender of slot until Stop.
func watchWalsender(ctx context.Context, pool *pgxpool.Pool, slot string) *walsender {
	w := &walsender{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			w.mu.Lock()
			pid := w.pid
			w.mu.Unlock()
			if pid == 0 {
				_ = pool.QueryRow(ctx, `SELECT r.pid FROM pg_stat_replication r
					JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1`, slot).Scan(&pid)
			}
			if pid != 0 {
				if cpu, start, ok := procCPU(pid); ok {
					now := uptime()
					w.mu.Lock()
					w.pid, w.start, w.cpu, w.sampled = pid, start, cpu, now
					w.mu.Unlock()
				}
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// Stop ends the sampling and returns the walsender's busy fraction of one
// core, or -1 when it was never seen.
func (w *walsender) Stop() float64 {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pid == 0 || w.sampled <= w.start {
		return -1
	}
	return w.cpu / (w.sampled - w.start)
}

// brokerCPU measures a broker process's CPU between its start and Stop.
type brokerCPU struct {
	pid  int
	cpu0 float64
	t0   time.Time
}

func startBrokerCPU(pid int) brokerCPU {
	if pid == 0 {
		return brokerCPU{}
	}
	cpu, _, _ := procCPU(pid)
	return brokerCPU{pid: pid, cpu0: cpu, t0: time.Now()}
}

// Stop returns the CPU the broker used since start, as a fraction of one
// core, or -1 when there is no broker process.
func (b brokerCPU) Stop() float64 {
	if b.pid == 0 {
		return -1
	}
	cpu, _, ok := procCPU(b.pid)
	if !ok {
		return -1
	}
	return (cpu - b.cpu0) / time.Since(b.t0).Seconds()
}

// memWatch samples a process's memory in /proc/PID/status every 10 ms and
// keeps two peaks: RssAnon, its anonymous resident memory (heap, stacks,
// runtime structures), and VmHWM, its peak RSS. Peak RSS also counts the
// binary's code and read-only data mapped from the page cache, which grow
// with the binary and with the kernel's page-cache folio sizes, not with
// what the process allocates; the anonymous peak is what the relay's own
// memory use moves. VmHWM and not rusage's ru_maxrss: a child's ru_maxrss
// keeps the high-water mark of the memory it was forked from, so a child
// of a bench process that grew (the broker-alone probes build their
// messages in memory) would report the bench's size.
type memWatch struct {
	stop  chan struct{}
	peak  chan memPeaks
	once  *sync.Once
	peaks *memPeaks
}

// memPeaks are the peaks a memWatch saw, in MiB (0: never read).
type memPeaks struct{ anon, hwm float64 }

func watchMem(pid int) memWatch {
	w := memWatch{stop: make(chan struct{}), peak: make(chan memPeaks, 1), once: new(sync.Once), peaks: new(memPeaks)}
	go func() {
		var peak memPeaks
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			kb := procStatusKB(pid, "RssAnon:", "VmHWM:")
			peak.anon = max(peak.anon, kb[0]/1024)
			peak.hwm = max(peak.hwm, kb[1]/1024)
			select {
			case <-w.stop:
				w.peak <- peak
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// Stop ends the sampling and returns the peaks seen. Later calls return
// the same.
func (w memWatch) Stop() memPeaks {
	w.once.Do(func() {
		close(w.stop)
		*w.peaks = <-w.peak
	})
	return *w.peaks
}

// procStatusKB reads the "Key:  N kB" lines of /proc/PID/status named by
// keys, in one read: the values in kB, in the order of keys, 0 for a key
// not found or a process gone.
func procStatusKB(pid int, keys ...string) []float64 {
	out := make([]float64, len(keys))
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for line := range strings.Lines(string(b)) {
		for i, key := range keys {
			if rest, ok := strings.CutPrefix(line, key); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					out[i], _ = strconv.ParseFloat(f[0], 64)
				}
			}
		}
	}
	return out
}
