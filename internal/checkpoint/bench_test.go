package checkpoint_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
)

// BenchmarkTrackAck: per event, Add and one acknowledgement per sink, in
// transactions of 100, on one goroutine: the tracker's hot path.
func BenchmarkTrackAck(b *testing.B) {
	for _, sinks := range []int{1, 3} {
		b.Run(fmt.Sprintf("sinks=%d", sinks), func(b *testing.B) {
			c := checkpoint.New(checkpoint.Config{MaxEvents: 1 << 30, MaxBytes: 1 << 40}, 0)
			var all []*checkpoint.Sink
			for i := range sinks {
				s, _ := c.AddSink(fmt.Sprint(i))
				all = append(all, s)
			}
			const per = 100
			evs := make([]event.Event, per)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") }()
			lsn := uint64(0)
			for n := 0; n < b.N; n += per {
				tx := c.Begin()
				lsn += 100
				for j := range evs {
					e := &evs[j]
					e.Size, e.CommitLSN, e.Seq = 100, lsn, j
					c.Add(tx, e, routes(sinks))
				}
				c.Commit(tx, lsn, lsn+8, time.Time{})
				for _, s := range all {
					for j := range evs {
						s.Ack(&evs[j])
					}
				}
				_ = c.Safe()
			}
		})
	}
}

// cpuTime is the process's CPU time (user + system): on a shared machine it
// moves far less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
