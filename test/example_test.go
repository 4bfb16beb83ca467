package test

import (
	"context"
	"database/sql"
	"fmt"
	outboxcdc "github.com/outbox-cdc/outbox-cdc"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	_ "github.com/jackc/pgx/v5/stdlib"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/handler"
	"github.com/outbox-cdc/outbox-cdc/handler/inbox"
	"github.com/outbox-cdc/outbox-cdc/outbox"
)

var (
	exampleOnce sync.Once
	exampleBin  string
	exampleErr  error
)

func exampleBinary(t *testing.T) string {
	t.Helper()
	exampleOnce.Do(func() {
		dir, err := os.MkdirTemp("", "outbox-cdc-example-")
		if err != nil {
			exampleErr = err
			return
		}
		registerClose(func() { os.RemoveAll(dir) })
		exampleBin = filepath.Join(dir, "order-projection")
		out, err := exec.Command("go", "build", "-o", exampleBin, "github.com/outbox-cdc/outbox-cdc/examples/order-projection").CombinedOutput()
		if err != nil {
			exampleErr = fmt.Errorf("building examples/order-projection: %v\n%s", err, out)
		}
	})
	if exampleErr != nil {
		t.Fatal(exampleErr)
	}
	return exampleBin
}

// exampleArgs returns how to point the example at the kit's destination,
// and whether its consumer group has settled everything.
func exampleArgs(t *testing.T, b broker) (env, args []string, drained func() bool) {
	ctx := context.Background()
	switch k := b.(type) {
	case *kafkaKit:
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.k.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		adm := kadm.NewClient(cl)
		return []string{"KAFKA_BROKERS=" + k.k.Addr()}, []string{"-broker", "kafka", "-topic", k.topic, "-member", "m1"}, func() bool {
			ends, err1 := adm.ListEndOffsets(ctx, k.topic)
			committed, err2 := adm.FetchOffsets(ctx, "order-projection")
			ok := err1 == nil && err2 == nil
			ends.Each(func(o kadm.ListedOffset) {
				c, found := committed.Lookup(o.Topic, o.Partition)
				ok = ok && found && c.At >= o.Offset
			})
			return ok
		}
	case *natsKit:
		nc, err := natsgo.Connect(k.n.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		return []string{"NATS_URL=" + k.n.URL()}, []string{"-broker", "nats", "-nats-stream", k.stream, "-subject", "", "-nats-ack-wait", "2s"}, func() bool {
			c, err := js.Consumer(ctx, k.stream, "order-projection")
			if err != nil {
				return false
			}
			info, err := c.Info(ctx)
			return err == nil && info.NumPending == 0 && info.NumAckPending == 0
		}
	case *redisKit:
		c := goredis.NewClient(&goredis.Options{Addr: k.r.Addr()})
		t.Cleanup(func() { c.Close() })
		return []string{"REDIS_ADDR=" + k.r.Addr()}, []string{"-broker", "redis", "-redis-stream", k.stream, "-member", "m1"}, func() bool {
			gs, err := c.XInfoGroups(ctx, k.stream).Result()
			for _, g := range gs {
				if g.Name == "order-projection" {
					return err == nil && g.Pending == 0 && g.Lag == 0
				}
			}
			return false
		}
	}
	t.Fatalf("no example arguments for %T", b)
	return nil, nil, nil
}

// Acceptance 5: the example service, fed by outbox-cdc from a producer
// that writes outbox rows with package outbox (pgx and database/sql), ends
// with the right count and total per order after two SIGKILLs.
func TestOrderProjectionExample(t *testing.T) {
	for _, get := range allBrokers(t) {
		b := get(t)
		t.Run(b.name(), func(t *testing.T) {
			e := brokerEnv(t, b.sinkYAML("bus"))
			relay := e.start()
			waitFor(t, 30*time.Second, "outbox-cdc streaming", func() bool { _, a := e.slot(); return a })
			db := newConsumerDB(t)
			env, args, drained := exampleArgs(t, b)
			start := func() *consumerProc {
				cmd := exec.Command(exampleBinary(t), args...)
				cmd.Env = append(append(os.Environ(), "PG_URL="+db.url), env...)
				return startProc(t, cmd)
			}
			p := start()

			const n, orders = 3000, 30
			rng := rand.New(rand.NewPCG(17, 17))
			wantEvents, wantCents := map[string]int{}, map[string]int{}
			w, err := outbox.New(outbox.Table{})
			if err != nil {
				t.Fatal(err)
			}
			sqlDB, err := sql.Open("pgx", pg.URL(e.db))
			if err != nil {
				t.Fatal(err)
			}
			defer sqlDB.Close()
			ctx := context.Background()
			projected := func() int {
				return db.count(t, "SELECT coalesce(sum(events), 0)::int FROM order_projection")
			}
			kills := 0
			for i := 0; i < n; {
				k := min(1+rng.IntN(10), n-i)
				evs := make([]outbox.Event, k)
				for j := range evs {
					order := fmt.Sprintf("o%d", rng.IntN(orders))
					cents := rng.IntN(100000)
					wantEvents[order]++
					wantCents[order] += cents
					evs[j] = outbox.Event{Type: "com.example.order.line_added", Source: "/shop/orders", AggregateType: "order", AggregateID: order,
						Data: map[string]any{"line": i + j, "amount": jsonNumber(cents)}}
				}
				if i%2 == 0 {
					tx, err := e.pool.Begin(ctx)
					if err != nil {
						t.Fatal(err)
					}
					for _, ev := range evs {
						if _, err := w.Write(ctx, tx, ev); err != nil {
							t.Fatal(err)
						}
					}
					if err := tx.Commit(ctx); err != nil {
						t.Fatal(err)
					}
				} else {
					tx, err := sqlDB.BeginTx(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					for _, ev := range evs {
						if _, err := w.WriteSQL(ctx, tx, ev); err != nil {
							t.Fatal(err)
						}
					}
					if err := tx.Commit(); err != nil {
						t.Fatal(err)
					}
				}
				i += k
				if kills < 2 && i >= (kills+1)*n/3 {
					waitFor(t, time.Minute, "the projection to advance", func() bool { return projected() >= (kills+1)*n/5 })
					p.kill()
					kills++
					p = start()
				}
			}
			waitFor(t, 3*time.Minute, "every event projected and the group drained", func() bool { return projected() >= n && drained() })
			rows, err := db.pool.Query(ctx, "SELECT aggregate_id, events, (total * 100)::bigint FROM order_projection")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			seen := 0
			for rows.Next() {
				var id string
				var events int
				var cents int64
				if err := rows.Scan(&id, &events, &cents); err != nil {
					t.Fatal(err)
				}
				seen++
				if events != wantEvents[id] || cents != int64(wantCents[id]) {
					t.Fatalf("order %s: %d events, total %d cents; want %d events, %d cents", id, events, cents, wantEvents[id], wantCents[id])
				}
			}
			if seen != len(wantEvents) {
				t.Fatalf("%d orders projected, want %d", seen, len(wantEvents))
			}
			p.stop(t)
			relay.stop(t)
		})
	}
}

// jsonNumber writes cents as an exact decimal JSON number.
func jsonNumber(cents int) any { return rawNumber(fmt.Sprintf("%d.%02d", cents/100, cents%100)) }

type rawNumber string

func (r rawNumber) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// Local handlers inside an embedding outbox-cdc (handler.NewSink through
// outboxcdc.CustomSink): every outbox row runs its handler once, per aggregate
// in commit order, and is acknowledged to the relay only after the inbox
// transaction committed (the slot then moves past it).
func TestLocalHandlerSink(t *testing.T) {
	e := newEnv(t, "")
	db := newConsumerDB(t)
	ib, err := inbox.New(db.pool, inbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := handler.NewRouter()
	r.Handle("test.*", func(ctx context.Context, ev cloudevents.Event) error {
		var d struct {
			Agg string `json:"agg"`
			Seq int    `json:"seq"`
		}
		if err := ev.DataAs(&d); err != nil {
			return err
		}
		_, err := inbox.Tx(ctx).Exec(ctx, "INSERT INTO applied (key, seq, id) VALUES ($1, $2, $3)", d.Agg, d.Seq, ev.ID())
		return err
	})
	newSink, err := handler.NewSink(handler.Config{Name: "local", Store: ib, DeadLetters: ib, Concurrency: 4}, r)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(e.cfgPath, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := outboxcdc.New(ctx, cfg, outboxcdc.Options{Sinks: []outboxcdc.CustomSink{{Name: "local", New: newSink}}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	waitFor(t, 30*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	const n = 2000
	if err := produce(ctx, e, n, 50, 20, 0, rand.New(rand.NewPCG(18, 18))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "every event handled", func() bool { return db.count(t, "SELECT count(*) FROM applied") >= n })
	end := e.currentLSN()
	waitFor(t, time.Minute, "the slot past every handled event", func() bool { c, _ := e.slot(); return c >= end })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rows, err := db.pool.Query(context.Background(), "SELECT key, seq FROM applied ORDER BY pos")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	next := map[string]int{}
	count := 0
	for rows.Next() {
		var key string
		var seq int
		rows.Scan(&key, &seq)
		if seq != next[key] {
			t.Fatalf("aggregate %s: seq %d handled after %d", key, seq, next[key]-1)
		}
		next[key]++
		count++
	}
	if count != n {
		t.Fatalf("%d events handled, want %d", count, n)
	}
}
