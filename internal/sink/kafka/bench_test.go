package kafka

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
)

// benchCluster is the real broker when OUTBOX_CDC_KAFKA_BROKERS is set, else
// kfake (whose allocations and CPU then count in the numbers).
func benchCluster(b *testing.B) *cluster {
	if v := os.Getenv(brokersEnv); v != "" {
		return newCluster(b, "kafka", strings.Split(v, ","), nil)
	}
	b.Logf("%s not set: benchmarking against kfake in this process", brokersEnv)
	return newFakeCluster(b)
}

func benchEvents(n int) []*event.Event {
	evs := make([]*event.Event, n)
	now := time.Now()
	for i := range evs {
		agg := fmt.Sprintf("order-%d", i%1000)
		evs[i] = &event.Event{
			ID:              fmt.Sprintf("0190a6f2-7c4e-7d6b-9f1e-%012d", i),
			Source:          "/outbox-cdc/db/public.outbox",
			Type:            "com.example.order.created",
			Time:            now,
			DataContentType: "application/json",
			DataKind:        event.DataJSON,
			Data:            []byte(fmt.Sprintf(`{"orderId":%q,"customer":"c-%d","items":[{"sku":"sku-1","qty":2,"price":"19.90"}],"total":"39.80"}`, agg, i)),
			AggregateType:   "order",
			AggregateID:     agg,
			Extensions:      []event.Extension{{Name: "partitionkey", Value: agg}, {Name: "pglsn", Value: fmt.Sprintf("0/%X", 0x16B3748+i)}},
			Seq:             i,
		}
	}
	return evs
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPublish measures Publish+ack throughput: one op is one event,
// published in batches of 256 and acknowledged by the broker.
//
//	OUTBOX_CDC_KAFKA_BROKERS=127.0.0.1:9092 go test -run '^$' -bench Publish -benchtime 200000x ./sink/kafka/
func BenchmarkPublish(b *testing.B) {
	c := benchCluster(b)
	for _, bc := range []struct {
		mode, compression string
		linger            time.Duration
	}{
		{ModeBinary, "lz4", 0}, // the defaults
		{ModeBinary, "lz4", -1},
		{ModeBinary, "lz4", 5 * time.Millisecond},
		{ModeBinary, "none", 0},
		{ModeBinary, "zstd", 0},
		{ModeStructured, "lz4", 0},
	} {
		b.Run(fmt.Sprintf("%s/%s/linger=%s", bc.mode, bc.compression, lingerName(bc.linger)), func(b *testing.B) {
			topic := c.createTopic(b, 3, nil)
			cfg := c.config(topic)
			cfg.ContentMode, cfg.Compression, cfg.Linger = bc.mode, bc.compression, bc.linger
			s, err := New(context.Background(), cfg, sinktest.Options("bench", nil, nil))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()

			const ring = 1 << 16 // > MaxInFlight: an event is reused only after its ack
			evs := benchEvents(ring)
			ctx := context.Background()
			batch := make([]*event.Event, 0, 256)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, t0 := cpuTime(), time.Now()
			for i := 0; i < b.N; i++ {
				batch = append(batch, evs[i%ring])
				if len(batch) == cap(batch) || i == b.N-1 {
					if err := s.Publish(ctx, batch); err != nil {
						b.Fatal(err)
					}
					batch = batch[:0]
				}
			}
			if err := s.Flush(ctx); err != nil { // every event is acknowledged
				b.Fatal(err)
			}
			b.StopTimer()
			elapsed, cpu := time.Since(t0), cpuTime()-cpu0
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
		})
	}
}

// BenchmarkLatency publishes at a steady 5,000 events/s in batches of 50
// (one every 10ms) and reports the publish-to-ack latency percentiles. One op
// is one event.
//
//	OUTBOX_CDC_KAFKA_BROKERS=127.0.0.1:9092 go test -run '^$' -bench Latency -benchtime 10000x ./sink/kafka/
func BenchmarkLatency(b *testing.B) {
	c := benchCluster(b)
	for _, linger := range []time.Duration{-1, 0, 5 * time.Millisecond} {
		b.Run("linger="+lingerName(linger), func(b *testing.B) {
			topic := c.createTopic(b, 3, nil)
			cfg := c.config(topic)
			cfg.Linger = linger
			rec := sinktest.NewRecorder().WithTimes()
			s, err := New(context.Background(), cfg, sinktest.Options("bench", rec, nil))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			evs := benchEvents(b.N)
			start := make([]time.Time, b.N)
			ctx := context.Background()
			const per = 50
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			b.ResetTimer()
			for i := 0; i < b.N; i += per {
				<-tick.C
				batch := evs[i:min(i+per, b.N)]
				now := time.Now()
				for _, e := range batch {
					start[e.Seq] = now
				}
				if err := s.Publish(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			lat := make([]time.Duration, len(evs))
			for i, e := range evs {
				at, _ := rec.AckTime(e)
				lat[i] = at.Sub(start[i])
			}
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(pct(1), "max-ms")
		})
	}
}

func lingerName(d time.Duration) string {
	switch {
	case d == 0:
		return "default-" + DefaultLinger.String()
	case d < 0:
		return "none"
	}
	return d.String()
}

// BenchmarkEncode measures building one event's record and releasing it, as
// the engine does for each event: no allocation once warm.
func BenchmarkEncode(b *testing.B) {
	for _, mode := range []string{ModeBinary, ModeStructured} {
		b.Run(mode, func(b *testing.B) {
			evs := benchEvents(1024)
			var ext extHeaders
			var r rec
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.build(evs[i&1023], "outbox.order", mode == ModeStructured, now, &ext)
				r.reset()
			}
		})
	}
}
