package kafka

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// TestConformance runs the sink conformance suite against kfake and the real
// broker, on a topic of three partitions. The event the sink can never
// deliver is larger than batch_max_bytes; kfake holds produce requests for
// CloseInFlight (the real broker cannot).
func TestConformance(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *cluster) {
		sinktest.Run(t, func(t *testing.T) sinktest.Destination {
			topic := c.createTopic(t, 3, nil)
			d := sinktest.Destination{
				Open: func(t *testing.T, opts sink.Options) sink.Sink {
					cfg := c.config(topic)
					cfg.BatchMaxBytes = 16 << 10
					s, err := New(context.Background(), cfg, opts)
					if err != nil {
						t.Fatal(err)
					}
					return s
				},
				Read: func(t *testing.T, n int) []string {
					var ids []string
					for _, r := range c.read(t, n, topic) {
						ids = append(ids, string(headerValue(r, "ce_id")))
					}
					return ids
				},
				Poison: func(e *event.Event) {
					e.DataKind, e.Data = event.DataBinary, make([]byte, 32<<10)
				},
			}
			if c.fake != nil {
				d.Hold = func(t *testing.T) func() { return holdProduce(c) }
			}
			return d
		})
	})
}

// holdProduce makes kfake hold every produce request until the returned
// function is called.
func holdProduce(c *cluster) func() {
	released := make(chan struct{})
	c.fake.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case <-released:
			c.fake.DropControl()
		default:
			c.fake.KeepControl()
			c.fake.SleepControl(func() { <-released })
		}
		return nil, nil, false
	})
	var once sync.Once
	return func() { once.Do(func() { close(released) }) }
}

// read returns every record of topic, by partition from the start, once
// there are at least n (duplicates included), failing after 45s.
func (c *cluster) read(t testing.TB, n int, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of at least %d records before the timeout", len(recs), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		recs = append(recs, fs.Records()...)
	}
	extra, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	return append(recs, cl.PollFetches(extra).Records()...)
}
