// Command handlers measures the handler framework's throughput per broker,
// with the PostgreSQL inbox off and on, against a bare client of the same
// broker reading the same stream (the limit), and prints the ratios.
//
// Each broker gets one stream of -events CloudEvents (binary mode, -keys
// keys); every contender reads all of it under a fresh consumer group, so
// all read the very same data. The handler is a no-op: what is measured is
// the framework (decoding, per-key dispatch, acks/commits) and, with the
// inbox, one PostgreSQL transaction per event.
//
//	go run ./test/bench/handlers [-events 20000] [-runs 3] [-brokers kafka,nats,redis]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outbox-cdc/outbox-cdc/handler"
	"github.com/outbox-cdc/outbox-cdc/handler/inbox"
	hkafka "github.com/outbox-cdc/outbox-cdc/handler/kafka"
	hnats "github.com/outbox-cdc/outbox-cdc/handler/nats"
	hredis "github.com/outbox-cdc/outbox-cdc/handler/redis"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

var (
	events      = flag.Int("events", 20000, "events per stream")
	keys        = flag.Int("keys", 100, "partition keys")
	runs        = flag.Int("runs", 3, "runs of each contender (medians are reported)")
	concurrency = flag.Int("concurrency", 16, "handler.Config.Concurrency")
	brokerList  = flag.String("brokers", "kafka,nats,redis", "brokers to measure")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/handlers:", err)
		os.Exit(1)
	}
}

// target is one broker's stream and how to read it three ways.
type target struct {
	name    string
	publish func(ctx context.Context) error
	bare    func(ctx context.Context, group string) error // reads and acks all events
	source  func(group string) (handler.Source, error)
	close   func()
}

var seq atomic.Int64

func uniq(p string) string { return fmt.Sprintf("%s%d%d", p, time.Now().UnixNano()%1e6, seq.Add(1)) }

func attrs(i int) (key string, id string, data []byte) {
	key = fmt.Sprintf("k%d", i%*keys)
	return key, fmt.Sprintf("e%d", i), fmt.Appendf(nil, `{"order_id":%q,"amount":12.34,"line":%d}`, key, i)
}

func run() error {
	ctx := context.Background()
	pg, err := harness.StartPostgres(ctx, harness.PostgresOptions{Fsync: true})
	if err != nil {
		return err
	}
	defer pg.Close()
	pool, err := pgxpool.New(ctx, pg.URL("postgres")+"&pool_max_conns="+fmt.Sprint(*concurrency+4))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := inbox.Migrate(ctx, pool, ""); err != nil {
		return err
	}
	ib, err := inbox.New(pool, inbox.Config{})
	if err != nil {
		return err
	}
	fmt.Printf("handler bench: %d events over %d keys per broker, concurrency %d, %d runs each, medians in events/s\n",
		*events, *keys, *concurrency, *runs)
	fmt.Printf("%-6s %12s %14s %7s %14s %7s\n", "broker", "bare client", "handler", "ratio", "handler+inbox", "ratio")
	for _, b := range strings.Split(*brokerList, ",") {
		t, err := newTarget(ctx, b)
		if err != nil {
			return err
		}
		if err := t.publish(ctx); err != nil {
			t.close()
			return err
		}
		var bare, plain, withInbox []float64
		for range *runs {
			r, err := timed(func() error { return t.bare(ctx, uniq("bare")) })
			if err != nil {
				t.close()
				return fmt.Errorf("%s bare: %w", b, err)
			}
			bare = append(bare, r)
			for _, store := range []handler.Store{nil, ib} {
				d, err := consume(ctx, t, store)
				r := float64(*events) / d.Seconds()
				if err != nil {
					t.close()
					return fmt.Errorf("%s handler: %w", b, err)
				}
				if store == nil {
					plain = append(plain, r)
				} else {
					withInbox = append(withInbox, r)
				}
			}
		}
		t.close()
		mb, mp, mi := median(bare), median(plain), median(withInbox)
		fmt.Printf("%-6s %12.0f %14.0f %7.2f %14.0f %7.2f\n", b, mb, mp, mp/mb, mi, mi/mb)
	}
	return nil
}

func timed(f func() error) (float64, error) {
	start := time.Now()
	if err := f(); err != nil {
		return 0, err
	}
	return float64(*events) / time.Since(start).Seconds(), nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// consume runs a Consumer with a no-op handler until every event was
// handled, and returns how long that took (the stop is not counted).
func consume(ctx context.Context, t *target, store handler.Store) (time.Duration, error) {
	var n atomic.Int64
	done := make(chan struct{})
	r := handler.NewRouter()
	r.Handle("bench.*", func(context.Context, cloudevents.Event) error {
		if n.Add(1) == int64(*events) {
			close(done)
		}
		return nil
	})
	group := uniq("handler")
	src, err := t.source(group)
	if err != nil {
		return 0, err
	}
	c, err := handler.NewConsumer(handler.Config{Name: group, Store: store, Concurrency: *concurrency}, r, src)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- c.Run(ctx) }()
	select {
	case <-done:
		d := time.Since(start)
		cancel()
		return d, <-errc
	case err := <-errc:
		cancel()
		return 0, fmt.Errorf("consumer stopped early: %v", err)
	case <-time.After(5 * time.Minute):
		cancel()
		return 0, fmt.Errorf("timed out with %d of %d events handled", n.Load(), *events)
	}
}

func newTarget(ctx context.Context, name string) (*target, error) {
	switch name {
	case "kafka":
		return kafkaTarget(ctx)
	case "nats":
		return natsTarget(ctx)
	case "redis":
		return redisTarget(ctx)
	}
	return nil, fmt.Errorf("unknown broker %q", name)
}

func kafkaTarget(ctx context.Context) (*target, error) {
	k, err := harness.StartKafka(ctx, harness.KafkaOptions{HeapMB: 768})
	if err != nil {
		return nil, err
	}
	topic := uniq("bench")
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		k.Close()
		return nil, err
	}
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		cl.Close()
		k.Close()
		return nil, err
	}
	return &target{
		name: "kafka",
		publish: func(ctx context.Context) error {
			recs := make([]*kgo.Record, 0, *events)
			for i := range *events {
				key, id, data := attrs(i)
				recs = append(recs, &kgo.Record{Key: []byte(key), Value: data, Headers: []kgo.RecordHeader{
					{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(id)}, {Key: "ce_source", Value: []byte("/bench")},
					{Key: "ce_type", Value: []byte("bench.event")}, {Key: "ce_partitionkey", Value: []byte(key)}, {Key: "content-type", Value: []byte("application/json")}}})
			}
			return cl.ProduceSync(ctx, recs...).FirstErr()
		},
		bare: func(ctx context.Context, group string) error {
			c, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))
			if err != nil {
				return err
			}
			defer c.Close()
			n := 0
			for n < *events {
				fs := c.PollRecords(ctx, 500)
				fs.EachRecord(func(*kgo.Record) { n++ })
			}
			return c.CommitUncommittedOffsets(ctx)
		},
		source: func(group string) (handler.Source, error) {
			return hkafka.New(hkafka.Config{Brokers: []string{k.Addr()}, Topics: []string{topic}, Group: group})
		},
		close: func() { cl.Close(); k.Close() },
	}, nil
}

func natsTarget(ctx context.Context) (*target, error) {
	n, err := harness.StartNATS(ctx, harness.NATSOptions{})
	if err != nil {
		return nil, err
	}
	nc, err := natsgo.Connect(n.URL())
	if err != nil {
		n.Close()
		return nil, err
	}
	js, _ := jetstream.New(nc)
	stream := uniq("BENCH")
	subj := strings.ToLower(stream)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subj + ".>"}}); err != nil {
		nc.Close()
		n.Close()
		return nil, err
	}
	return &target{
		name: "nats",
		publish: func(ctx context.Context) error {
			for i := range *events {
				key, id, data := attrs(i)
				m := natsgo.NewMsg(subj + ".order")
				m.Data = data
				for _, h := range [][2]string{{"ce-specversion", "1.0"}, {"ce-id", id}, {"ce-source", "/bench"}, {"ce-type", "bench.event"},
					{"ce-partitionkey", key}, {"ce-datacontenttype", "application/json"}} {
					m.Header.Set(h[0], h[1])
				}
				if _, err := js.PublishMsgAsync(m); err != nil {
					return err
				}
			}
			<-js.PublishAsyncComplete()
			return nil
		},
		bare: func(ctx context.Context, group string) error {
			c, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: group, AckPolicy: jetstream.AckExplicitPolicy})
			if err != nil {
				return err
			}
			it, err := c.Messages(jetstream.PullMaxMessages(hnats.DefaultPrefetch))
			if err != nil {
				return err
			}
			defer it.Stop()
			for range *events {
				m, err := it.Next()
				if err != nil {
					return err
				}
				m.Ack()
			}
			return nil
		},
		source: func(group string) (handler.Source, error) {
			return hnats.New(hnats.Config{Conn: nc, Stream: stream, Durable: group})
		},
		close: func() { nc.Close(); n.Close() },
	}, nil
}

func redisTarget(ctx context.Context) (*target, error) {
	r, err := harness.StartRedis(ctx, harness.RedisOptions{})
	if err != nil {
		return nil, err
	}
	c := goredis.NewClient(&goredis.Options{Addr: r.Addr(), PoolSize: 32})
	stream := uniq("bench:")
	return &target{
		name: "redis",
		publish: func(ctx context.Context) error {
			for i := 0; i < *events; i += 1000 {
				_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
					for j := i; j < min(i+1000, *events); j++ {
						key, id, data := attrs(j)
						p.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: []any{"specversion", "1.0", "id", id, "source", "/bench",
							"type", "bench.event", "datacontenttype", "application/json", "partitionkey", key, "data", string(data)}})
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		},
		bare: func(ctx context.Context, group string) error {
			if err := c.XGroupCreate(ctx, stream, group, "0").Err(); err != nil {
				return err
			}
			for n := 0; n < *events; {
				res, err := c.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: group, Consumer: "bare", Streams: []string{stream, ">"},
					Count: hredis.DefaultCount, Block: time.Second}).Result()
				if err != nil {
					return err
				}
				var ids []string
				for _, m := range res[0].Messages {
					ids = append(ids, m.ID)
				}
				if err := c.XAck(ctx, stream, group, ids...).Err(); err != nil {
					return err
				}
				n += len(ids)
			}
			return nil
		},
		source: func(group string) (handler.Source, error) {
			return hredis.New(hredis.Config{Client: c, Streams: []string{stream}, Group: group, Consumer: "bench"})
		},
		close: func() { c.Close(); r.Close() },
	}, nil
}
