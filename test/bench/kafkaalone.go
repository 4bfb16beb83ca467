package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/observe"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// aloneKafka returns a franz-go client with the Kafka sink's defaults
// (acks=all, idempotent, lz4, linger 2ms, murmur2 keys) producing to topic,
// a new topic of 4 partitions, created here.
func aloneKafka(ctx context.Context, topic string, opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(kafka.Addr()),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	}, opts...)...)
	if err != nil {
		return nil, err
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		cl.Close()
		return nil, fmt.Errorf("create topic %s: %w", topic, err)
	}
	return cl, nil
}

// kafkaAlone measures the Kafka broker's own produce latency under the load
// of the latency run just before, without outbox-cdc: a franz-go producer
// with the sink's defaults (acks=all, idempotent, lz4, linger 2ms, murmur2
// keys over 4 partitions) produces rate events/s in groups of per, with
// keys and payloads like the relay's, and times each record from Produce to
// its acknowledgement. The difference between this and outbox-cdc's
// commit → ack is what the relay adds; the rest is the broker and its
// client.
func (b *bench) kafkaAlone(ctx context.Context, rate, per int) error {
	if kafka == nil {
		return nil
	}
	topic := fmt.Sprintf("bench-alone-%d-%d", rate, time.Now().UnixNano())
	cl, err := aloneKafka(ctx, topic)
	if err != nil {
		return fmt.Errorf("kafka alone: %w", err)
	}
	defer cl.Close()
	value := []byte(`{"specversion":"1.0","id":"0190d3f2-6c1e-7a42-9c1b-1f2e3d4c5b6a","source":"/bench","type":"bench.latency",` +
		`"subject":"a1","time":"2026-11-30T10:00:00.000000Z","datacontenttype":"application/json","partitionkey":"a1",` +
		`"aggregatetype":"order","pglsn":"0/1A2B3C4D","data":{"seq":12345}}`)
	var (
		mu  sync.Mutex
		lat []float64
		bad error
	)
	send := func(n int, measure bool) {
		interval := time.Duration(float64(time.Second) * float64(per) / float64(rate))
		next := time.Now()
		for seq := 0; seq < n; seq += per {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(interval)
			t0 := time.Now()
			for i := seq; i < seq+per; i++ {
				r := &kgo.Record{Key: fmt.Appendf(nil, "a%d", i%50), Value: value}
				cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
					mu.Lock()
					defer mu.Unlock()
					if err != nil && bad == nil {
						bad = err
					}
					if measure {
						lat = append(lat, time.Since(t0).Seconds()*1000)
					}
				})
			}
		}
		cl.Flush(ctx)
	}
	send(rate**latWarm, false)
	total := rate * *latSecs
	send(total, true)
	mu.Lock()
	defer mu.Unlock()
	if bad != nil {
		return fmt.Errorf("kafka alone: %w", bad)
	}
	if len(lat) < total {
		return fmt.Errorf("kafka alone: %d of %d records acknowledged", len(lat), total)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	// The same figures read the way commit → ack is, through the
	// histogram's buckets: interpolation inside a bucket moves a quantile
	// by up to half the bucket's width.
	h := histogram{count: float64(len(lat))}
	for _, le := range observe.LatencyBuckets {
		n, _ := slices.BinarySearch(lat, le*1000+1e-9)
		h.buckets = append(h.buckets, bucket{le, float64(n)})
	}
	h.buckets = append(h.buckets, bucket{math.Inf(1), float64(len(lat))})
	fmt.Printf("broker alone: kafka at %5d events/s (%2d-row groups, %ds), franz-go with the sink's defaults: produce → ack p50 %.2f ms, p99 %.2f ms; through the histogram's buckets p50 %.2f ms, p99 %.2f ms\n",
		rate, per, *latSecs, pct(0.5), pct(0.99), h.quantile(0.5)*1000, h.quantile(0.99)*1000)
	return nil
}
