package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

// received is one event an independent consumer read back from a broker.
type received struct {
	ce      cloudevents.Event
	key     string            // Kafka record key, NATS subject, Redis stream
	headers map[string]string // protocol headers / fields, for binding checks
}

// broker is one real broker under test with an independent consumer.
type broker interface {
	name() string
	// sinkYAML is the sinks[] entry routing to this broker, named name.
	sinkYAML(name string) string
	// readAll returns every event delivered so far, in per-key order.
	readAll(t *testing.T) []received
	stop(t *testing.T)
	start(t *testing.T)
}

var (
	brokerOnce sync.Map // name → *brokerStart
)

type brokerStart struct {
	once sync.Once
	b    broker
	err  error
}

// shared starts a broker once per test binary; stopped in TestMain's exit
// through harness cleanup registered there.
func shared(t *testing.T, name string, start func(ctx context.Context) (broker, func(), error)) broker {
	t.Helper()
	v, _ := brokerOnce.LoadOrStore(name, &brokerStart{})
	bs := v.(*brokerStart)
	bs.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var closeFn func()
		bs.b, closeFn, bs.err = start(ctx)
		if closeFn != nil {
			registerClose(closeFn)
		}
	})
	harness.SkipIfNotInstalled(t, name, bs.err)
	if bs.err != nil {
		t.Fatal(bs.err)
	}
	return bs.b
}

var (
	closersMu sync.Mutex
	closers   []func()
)

func registerClose(f func()) {
	closersMu.Lock()
	closers = append(closers, f)
	closersMu.Unlock()
}

func closeShared() {
	closersMu.Lock()
	defer closersMu.Unlock()
	for _, f := range closers {
		f()
	}
}

// allBrokers returns every broker kind, each started once.
func allBrokers(t *testing.T) []func(t *testing.T) broker {
	return []func(t *testing.T) broker{kafkaBroker, natsBroker, redisBroker}
}

// toDelivered turns read-back events into the file sink's shape, so the same
// order and completeness checks apply.
func toDelivered(t *testing.T, rs []received) []delivered {
	t.Helper()
	out := make([]delivered, len(rs))
	for i, r := range rs {
		pk, _ := r.ce.Extensions()["partitionkey"].(string)
		lsn, _ := r.ce.Extensions()["pglsn"].(string)
		out[i] = delivered{ID: r.ce.ID(), Type: r.ce.Type(), Source: r.ce.Source(), Subject: r.ce.Subject(),
			PartitionKey: pk, LSN: lsn, Data: r.ce.Data()}
	}
	return out
}

// brokerEnv is a database whose outbox-cdc config routes to the given sinks.
func brokerEnv(t *testing.T, sinks ...string) *env {
	t.Helper()
	e := newEnv(t, "")
	cfg := fmt.Sprintf(`postgres:
  url: %q
  status_interval: 200ms
  standby_poll: 200ms
sinks:
%s
http: {addr: "-"}
log: {level: info}
`, pg.URL(e.db), strings.Join(sinks, "\n"))
	writeFile(t, e.cfgPath, cfg)
	return e
}

// Acceptance: 20,000 events over 50 aggregates read back by an independent
// consumer: every event once, attributes and data equal to the row, per-key
// order equal to commit order.
func TestBrokerRoundTrip(t *testing.T) {
	for _, get := range allBrokers(t) {
		b := get(t)
		t.Run(b.name(), func(t *testing.T) {
			e := brokerEnv(t, b.sinkYAML("bus"))
			p := e.start()
			const n = 20000
			if err := produce(context.Background(), e, n, 400, 50, 0, rand.New(rand.NewPCG(7, 7))); err != nil {
				t.Fatal(err)
			}
			var got []received
			waitFor(t, 3*time.Minute, "all events read back", func() bool { got = b.readAll(t); return len(got) >= n })
			evs := toDelivered(t, got)
			_, count := checkDelivery(t, evs, n)
			for id, c := range count {
				if c != 1 {
					t.Fatalf("event %s read %d times", id, c)
				}
			}
			for _, d := range evs[:100] {
				if d.Type != "test.event" || d.Source != "/test" {
					t.Fatalf("event %s: type %q source %q", d.ID, d.Type, d.Source)
				}
			}
			p.stop(t)
		})
	}
}

// Acceptance: the broker stopped for 30 s mid-stream: retries, nothing lost,
// order holds, and the slot did not advance while the broker was down.
func TestBrokerOutage(t *testing.T) {
	for _, get := range allBrokers(t) {
		b := get(t)
		t.Run(b.name(), func(t *testing.T) {
			e := brokerEnv(t, b.sinkYAML("bus"))
			addr := httpAddr(t)
			p := e.start("OUTBOX_CDC_HTTP_ADDR=" + addr)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(8, 8))
			next := make([]int, 20)
			if err := produceFrom(ctx, e, next, 2000, 100, 0, rng); err != nil {
				t.Fatal(err)
			}
			waitFor(t, time.Minute, "the first events", func() bool { return len(b.readAll(t)) >= 2000 })
			b.stop(t)
			restarted := false
			t.Cleanup(func() {
				if !restarted {
					b.start(t) // shared with later tests
				}
			})
			// Until the first event written now commits, the slot may follow
			// the server's WAL (keepalives, which WAL of other databases in
			// the cluster moves; on PostgreSQL 14 also the empty
			// transactions pgoutput sends there), never past it. So the
			// position held is taken once that event committed: the slot
			// moving past it means an undelivered event was confirmed.
			time.Sleep(time.Second)
			if err := produceFrom(ctx, e, next, 1, 1, 0, rng); err != nil {
				t.Fatal(err)
			}
			held := e.currentLSN()
			if err := produceFrom(ctx, e, next, 2999, 100, 0, rng); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if c, _ := e.slot(); c > held {
					t.Fatalf("confirmed_flush_lsn moved from %X to %X while %s was down", held, c, b.name())
				}
				time.Sleep(500 * time.Millisecond)
			}
			// Retries are spaced by the backoff: some, but no tight loop.
			retries := mustMetric(t, scrape(t, addr), "outbox_cdc_events_retried_total", "sink", "bus")
			t.Logf("%s: %v failed attempts during a 30 s outage", b.name(), retries)
			if retries < 1 || retries > 3000 {
				t.Errorf("%v failed attempts in a 30 s outage: want some, spaced by the backoff", retries)
			}
			b.start(t)
			restarted = true
			waitFor(t, 3*time.Minute, "every event after the outage", func() bool { return len(uniqueIDs(toDelivered(t, b.readAll(t)))) >= 5000 })
			checkDelivery(t, toDelivered(t, b.readAll(t)), 5000)
			end := e.currentLSN()
			waitFor(t, time.Minute, "the slot to catch up", func() bool { c, _ := e.slot(); return c >= end })
			p.stop(t)
		})
	}
}

// Acceptance: SIGKILL three times mid-stream: nothing lost; brokers with
// dedup end with zero duplicates, Kafka has duplicates only from the
// unconfirmed window.
func TestBrokerKill(t *testing.T) {
	for _, get := range allBrokers(t) {
		b := get(t)
		t.Run(b.name(), func(t *testing.T) {
			e := brokerEnv(t, b.sinkYAML("bus"))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			const n = 15000
			rng := rand.New(rand.NewPCG(9, 9))
			prodDone := make(chan error, 1)
			go func() { prodDone <- produce(ctx, e, n, 200, 30, 30*time.Millisecond, rand.New(rand.NewPCG(10, 10))) }()
			var confirmed []uint64
			p := e.start()
			for i := 0; i < 3; i++ {
				time.Sleep(time.Duration(800+rng.IntN(1500)) * time.Millisecond)
				p.kill()
				waitFor(t, 10*time.Second, "slot inactive", func() bool { _, a := e.slot(); return !a })
				c, _ := e.slot()
				confirmed = append(confirmed, c)
				p = e.start()
			}
			if err := <-prodDone; err != nil {
				t.Fatal(err)
			}
			waitFor(t, 3*time.Minute, "every event", func() bool { return len(uniqueIDs(toDelivered(t, b.readAll(t)))) >= n })
			evs := toDelivered(t, b.readAll(t))
			first, count := checkDelivery(t, evs, n)
			dups := 0
			for id, c := range count {
				if c == 1 {
					continue
				}
				dups += c - 1
				if b.name() != "kafka" {
					t.Errorf("event %s delivered %d times to %s, which deduplicates", id, c, b.name())
					continue
				}
				lsn := parseLSN(t, evs[first[id]].LSN)
				ok := false
				for _, c := range confirmed {
					ok = ok || lsn >= c
				}
				if !ok {
					t.Errorf("event %s (commit %s) repeated, but it was before every confirmed position at the kills", id, evs[first[id]].LSN)
				}
			}
			t.Logf("%s: %d events, %d duplicates after 3 kills", b.name(), n, dups)
			p.stop(t)
		})
	}
}

// Acceptance: fan-out to every broker with one down: the others keep
// receiving, the slot holds until it recovers, then all have everything.
func TestFanOutWithOneBrokerDown(t *testing.T) {
	var bs []broker
	for _, get := range allBrokers(t) {
		bs = append(bs, get(t))
	}
	if len(bs) < 2 {
		t.Skip("needs two brokers")
	}
	var sinks []string
	for i, b := range bs {
		sinks = append(sinks, b.sinkYAML(fmt.Sprintf("s%d", i)))
	}
	e := brokerEnv(t, sinks...)
	down := bs[len(bs)-1]
	p := e.start()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	down.stop(t)
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			down.start(t) // the broker is shared with later tests
		}
	})
	time.Sleep(500 * time.Millisecond)
	held := e.currentLSN() // the slot may follow the WAL up to the first held event (keepalives; empty transactions on PostgreSQL 14)
	// The healthy sinks keep receiving as long as the window (2048 events
	// by default) has room: the dead one holds the window, and memory stays
	// bounded. 1500 events fit.
	const n = 1500
	ctx := context.Background()
	if err := produce(ctx, e, n, 100, 10, 0, rand.New(rand.NewPCG(11, 11))); err != nil {
		t.Fatal(err)
	}
	for _, b := range bs[:len(bs)-1] {
		waitFor(t, 2*time.Minute, b.name()+" to receive everything while "+down.name()+" is down", func() bool {
			return len(uniqueIDs(toDelivered(t, b.readAll(t)))) >= n
		})
	}
	if c, _ := e.slot(); c > held {
		t.Fatalf("the slot moved from %X to %X while %s was down", held, c, down.name())
	}
	down.start(t)
	restarted = true
	for _, b := range bs {
		waitFor(t, 3*time.Minute, b.name()+" to have everything", func() bool { return len(uniqueIDs(toDelivered(t, b.readAll(t)))) >= n })
		checkDelivery(t, toDelivered(t, b.readAll(t)), n)
	}
	end := e.currentLSN()
	waitFor(t, time.Minute, "the slot to catch up", func() bool { c, _ := e.slot(); return c >= end })
	p.stop(t)
}
