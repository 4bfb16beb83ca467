package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// BenchmarkPublish measures Publish to acknowledgement through a local
// redis-server: one op is one event. Besides ns/op and allocs/op it reports
// events/s, the CPU this process spent per event (user+system, including the
// benchmark's own event generation and GC) and the CPU redis-server spent per
// event (INFO cpu) and the memory it holds per event afterwards (INFO
// memory: the entry, plus the guard key in "guard" mode).
//
//	go test -run '^$' -bench Publish -benchmem ./sink/redis/
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		name  string
		dedup string
		mode  string
		batch int
	}{
		{"entryid/binary/batch=64", DedupEntryID, ContentBinary, 64},
		{"entryid/binary/batch=256", DedupEntryID, ContentBinary, 256},
		{"entryid/binary/batch=512", DedupEntryID, ContentBinary, 512},
		{"entryid/binary/batch=1024", DedupEntryID, ContentBinary, 1024},
		{"entryid/structured/batch=1024", DedupEntryID, ContentStructured, 1024},
		{"guard/binary/batch=64", DedupGuard, ContentBinary, 64},
		{"guard/binary/batch=256", DedupGuard, ContentBinary, 256},
		{"guard/structured/batch=256", DedupGuard, ContentStructured, 256},
		{"none/binary/batch=1024", DedupNone, ContentBinary, 1024},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := startServer(b)
			s := newSink(b, srv, Config{
				Stream:      "bench:{{.AggregateType}}",
				Dedup:       bc.dedup,
				ContentMode: bc.mode,
				BatchSize:   bc.batch,
			}, nil, nil)
			benchPublish(b, s, srv)
		})
	}
}

// benchPublish publishes b.N events in slices of 256, as the pipeline hands
// them over, generating them outside the timer, then flushes.
func benchPublish(b *testing.B, s *Sink, srv *testServer) {
	const slice = 256
	rc := srv.client(b)
	payload := `{"orderId":"%s","customer":{"id":4711,"name":"Ada Lovelace"},"lines":[{"sku":"A-1","qty":2,"price":"9.99"},{"sku":"B-7","qty":1,"price":"24.50"}],"total":"44.48","seq":%d}`
	base := time.Now().UTC()
	gen := func(start, n int) []*event.Event {
		evs := make([]*event.Event, n)
		for i := range n {
			k := start + i
			agg := "order-" + strconv.Itoa(k%1000)
			evs[i] = &event.Event{
				ID:              fmt.Sprintf("0198c5a2-7e4f-7b3c-9d1e-%012d", k),
				Source:          "/outbox-cdc/shop/public.outbox",
				Type:            "order.created",
				Time:            base.Add(time.Duration(k) * time.Microsecond),
				DataContentType: "application/json",
				Data:            fmt.Appendf(nil, payload, agg, k),
				DataKind:        event.DataJSON,
				AggregateType:   "order",
				AggregateID:     agg,
				CommitLSN:       uint64(0x16B3748 + k*300),
				Extensions: []event.Extension{
					{Name: "partitionkey", Value: agg},
					{Name: "pglsn", Value: "0/" + strconv.FormatUint(uint64(0x16B3748+k*300), 16)},
				},
			}
		}
		return evs
	}
	ctx := context.Background()
	cpu0, redis0, mem0 := processCPU(), redisCPU(b, rc), redisMemory(b, rc)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += slice {
		n := min(slice, b.N-i)
		b.StopTimer()
		evs := gen(i, n)
		b.StartTimer()
		if err := s.Publish(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu1, redis1, mem1 := processCPU(), redisCPU(b, rc), redisMemory(b, rc)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/event")
	b.ReportMetric(float64((redis1-redis0).Microseconds())/float64(b.N), "redis-cpu-µs/event")
	b.ReportMetric(float64(mem1-mem0)/float64(b.N), "redis-B/event")
}

// redisMemory returns redis-server's used_memory.
func redisMemory(b *testing.B, c *goredis.Client) int64 {
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	n, _ := strconv.ParseInt(infoField(info, "used_memory"), 10, 64)
	return n
}

// processCPU returns this process's user+system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU returns redis-server's user+system CPU time from INFO cpu.
func redisCPU(b *testing.B, c *goredis.Client) time.Duration {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
		v, _ := strconv.ParseFloat(strings.TrimSpace(infoField(info, k)), 64)
		total += v
	}
	return time.Duration(total * float64(time.Second))
}

// BenchmarkAckLatency publishes 5,000 events/s (25 every 5 ms) for a second
// per b.N and reports the Publish-to-acknowledgement latency percentiles.
//
//	go test -run '^$' -bench AckLatency ./sink/redis/
func BenchmarkAckLatency(b *testing.B) {
	for _, dedup := range []string{DedupEntryID, DedupGuard} {
		b.Run(dedup, func(b *testing.B) {
			srv := startServer(b)
			obs := sinktest.NewRecorder().WithTimes()
			s := newSink(b, srv, Config{Stream: "lat", Dedup: dedup}, obs, nil)
			published := make(map[*event.Event]time.Time)
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			k := 0
			for range b.N {
				for range 200 {
					<-tick.C
					evs := makeEvents("lat-"+strconv.Itoa(k), 25, 5, []string{"x"})
					for i, e := range evs {
						e.CommitLSN = uint64(1000 + k*25 + i)
					}
					k++
					now := time.Now()
					for _, e := range evs {
						published[e] = now
					}
					if err := s.Publish(context.Background(), evs); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := s.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, len(published))
			for e, t0 := range published {
				at, _ := obs.AckTime(e)
				lat = append(lat, at.Sub(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		})
	}
}

// BenchmarkEncode measures encoding one event into its record and releasing
// it, as the engine does for each event: no allocation once warm.
func BenchmarkEncode(b *testing.B) {
	tmpl, err := sink.ParseTemplate("outbox:{{.AggregateType}}")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		enc  encoder
	}{
		{"entryid/binary", encoder{stream: tmpl, entryID: true}},
		{"entryid/structured", encoder{stream: tmpl, entryID: true, structured: true}},
		{"guard/binary", encoder{stream: tmpl, guard: true}},
		{"idmp/binary", encoder{stream: tmpl, idmp: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			evs := makeEvents("bench", 1024, 100, []string{"order"})
			var r record
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := bc.enc.encode(evs[i&1023], &r); err != nil {
					b.Fatal(err)
				}
				r.reset()
			}
		})
	}
}
