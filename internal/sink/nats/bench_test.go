package nats

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
)

// benchEvents returns a pool of events shaped like outbox rows: a JSON
// payload of about 250 bytes, partitionkey and pglsn extensions.
func benchEvents(n int) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		agg := fmt.Sprintf("order-%d", i%1000)
		evs[i] = &event.Event{
			Source:          "/pg/shop/public.outbox",
			Type:            "order.updated",
			Time:            testBaseTime.Add(time.Duration(i) * time.Microsecond),
			DataContentType: "application/json",
			DataKind:        event.DataJSON,
			Data: fmt.Appendf(nil, `{"order_id":%q,"customer":"c-%d","status":"paid","total":{"amount":%d,"currency":"EUR"},`+
				`"lines":[{"sku":"sku-1","qty":2},{"sku":"sku-2","qty":1}],"note":"benchmark payload padding........"}`, agg, i%77, i),
			AggregateType: "orders",
			AggregateID:   agg,
			Extensions: []event.Extension{
				{Name: "partitionkey", Value: agg},
				{Name: "pglsn", Value: fmt.Sprintf("0/%X", 0x16B0000+i*64)},
			},
		}
	}
	return evs
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublish measures throughput through a real nats-server (a
// separate process on the same machine): one op is one event published and
// acknowledged by the server. cpu-ns/event is this process's CPU time (user
// + system) per event, which includes the nats.go client.
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		mode    string
		relaxed bool
	}{{ModeBinary, false}, {ModeStructured, false}, {ModeBinary, true}} {
		mode, name := bc.mode, bc.mode
		if bc.relaxed {
			name += "/relaxed_order"
		}
		b.Run(name, func(b *testing.B) {
			srv := startNATS(b, harness.NATSOptions{})
			cfg := baseConfig(srv.URL())
			cfg.ContentMode = mode
			cfg.RelaxedOrder = bc.relaxed
			cfg.Stream.MaxAge = time.Minute // keep the store small over many runs
			cfg.Stream.DuplicateWindow = time.Minute
			s := newSink(b, cfg, nil)
			// Events are reused from a pool far larger than MaxInFlight, so
			// an event is acknowledged before it is used again; only the id
			// changes, and all ids are made before the timer starts.
			pool := benchEvents(1 << 14)
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = fmt.Sprintf("%s-%d-%09d", mode, time.Now().UnixNano(), i)
			}
			batch := make([]*event.Event, 0, 1024)
			ctx := context.Background()
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e := pool[i&(len(pool)-1)]
				e.ID = ids[i]
				batch = append(batch, e)
				if len(batch) == cap(batch) || i == b.N-1 {
					if err := s.Publish(ctx, batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/event")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkAckLatency publishes at 5,000 events/s in batches of 5 every
// millisecond and reports the latency from Publish to acknowledgement.
func BenchmarkAckLatency(b *testing.B) {
	srv := startNATS(b, harness.NATSOptions{})
	rec := sinktest.NewRecorder().WithTimes()
	s := newSink(b, baseConfig(srv.URL()), rec)
	evs := benchEvents(b.N)
	sent := make([]time.Time, b.N)
	for i, e := range evs {
		e.ID = fmt.Sprintf("lat-%d-%09d", time.Now().UnixNano(), i)
		e.Seq = i
	}
	ctx := context.Background()
	b.ResetTimer()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 0; i < b.N; i += 5 {
		<-tick.C
		batch := evs[i:min(i+5, b.N)]
		now := time.Now()
		for j := range batch {
			sent[i+j] = now
		}
		if err := s.Publish(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	lat := make([]time.Duration, b.N)
	for i := range lat {
		at, _ := rec.AckTime(evs[i])
		lat[i] = at.Sub(sent[i])
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}

// BenchmarkEncode measures building one message, without a server.
func BenchmarkEncode(b *testing.B) {
	for _, mode := range []string{ModeBinary, ModeStructured} {
		b.Run(mode, func(b *testing.B) {
			enc := newEncoder(mode == ModeStructured)
			pool := benchEvents(1024)
			for i, e := range pool {
				e.ID = fmt.Sprintf("evt-%09d", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var p entry
			for i := 0; i < b.N; i++ {
				enc.encode(pool[i&1023], "outbox.orders", &p)
			}
		})
	}
}

// BenchmarkAsyncPublish justifies the sink's own publisher (publish.go): the
// same binary-mode messages through it and through nats.go's
// PublishMsgAsync, 4,096 awaiting their PubAck at most, against a real
// nats-server. cpu-ns/msg is this process's CPU per message: the client's
// cost, which the relay pays beside its own decode and encode.
func BenchmarkAsyncPublish(b *testing.B) {
	srv := startNATS(b, harness.NATSOptions{})
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	const window = 4096
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window), jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ASYNCBENCH", Subjects: []string{"asyncbench.>"},
		MaxAge: time.Minute, Duplicates: time.Minute}); err != nil {
		b.Fatal(err)
	}
	// messages returns a pool of encoded entries, larger than the window so
	// that an entry is acknowledged before it is used again, and n ids.
	messages := func(n int) ([]entry, []string) {
		enc := newEncoder(false)
		pool := benchEvents(2 * window)
		ps := make([]entry, len(pool))
		for i, e := range pool {
			e.ID = fmt.Sprintf("evt-%09d", i)
			enc.encode(e, "asyncbench.orders", &ps[i])
		}
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("%d-%09d", time.Now().UnixNano(), i)
		}
		return ps, ids
	}
	report := func(b *testing.B, cpu0 time.Duration) {
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/msg")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	}
	b.Run("publisher", func(b *testing.B) {
		ps, ids := messages(b.N)
		slots := make(chan struct{}, window)
		var bad atomic.Pointer[error]
		pb, err := newPublisher(nc, 30*time.Second,
			func(*entry, uint64, bool) { <-slots },
			func(_ *entry, err error) { bad.Store(&err); <-slots })
		if err != nil {
			b.Fatal(err)
		}
		defer pb.close()
		b.ReportAllocs()
		cpu0 := cpuTime()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			slots <- struct{}{}
			p := &ps[i%len(ps)]
			p.msg.Header[hdrMsgID][0] = ids[i]
			if err := pb.publish(p); err != nil {
				b.Fatal(err)
			}
		}
		for range window {
			slots <- struct{}{}
		}
		b.StopTimer()
		if err := bad.Load(); err != nil {
			b.Fatal(*err)
		}
		report(b, cpu0)
	})
	b.Run("jetstream-async", func(b *testing.B) {
		ps, ids := messages(b.N)
		b.ReportAllocs()
		cpu0 := cpuTime()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			p := &ps[i%len(ps)]
			p.msg.Header[hdrMsgID][0] = ids[i]
			if _, err := js.PublishMsgAsync(&p.msg, jetstream.WithRetryAttempts(0)); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("no PubAck for a minute")
		}
		b.StopTimer()
		report(b, cpu0)
	})
}
