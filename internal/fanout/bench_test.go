package fanout_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/internal/fanout"
)

// BenchmarkFanout: events through the checkpoint and the fan-out to sinks
// that acknowledge inside Publish, as the pipeline drives them. One op is
// one event.
func BenchmarkFanout(b *testing.B) {
	for _, sinks := range []int{1, 3} {
		b.Run(fmt.Sprintf("sinks=%d", sinks), func(b *testing.B) {
			var targets []fanout.Target
			for i := 0; i < sinks; i++ {
				s := &fakeSink{}
				s.publish = func(_ context.Context, evs []*event.Event) error {
					for _, e := range evs {
						s.ack(e)
					}
					return nil
				}
				targets = append(targets, fanout.Target{Name: fmt.Sprint(i), Open: open(s)})
			}
			c := checkpoint.New(checkpoint.Config{}, 0)
			f, err := fanout.New(context.Background(), fanout.Config{Targets: targets, Checkpoint: c})
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- f.Run(context.Background()) }()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") }()
			const per = 100
			lsn := uint64(0)
			for n := 0; n < b.N; n += per {
				tx := c.Begin()
				lsn += 100
				for j := 0; j < per; j++ {
					for ch := c.Wait(); ch != nil; ch = c.Wait() {
						f.Flush()
						<-ch
					}
					e := &event.Event{Size: 100, CommitLSN: lsn, Seq: j}
					if routes := c.Add(tx, e, f.Route(e)); routes != 0 {
						f.Add(e, routes)
					}
				}
				c.Commit(tx, lsn, lsn+8, time.Time{})
				f.Flush()
			}
			f.Stop()
			<-done
			c.Drain(context.Background())
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
