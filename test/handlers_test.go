package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
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
)

// The handler framework (docs/handlers.md) against real brokers: a test
// consumer (test/consumer) applies each event, inside the inbox
// transaction, as a row of applied(pos, key, seq, id); the tests check
// that every event took effect exactly once and, per key, in order.

var (
	consumerOnce sync.Once
	consumerBin  string
	consumerErr  error
)

// consumerBinary builds test/consumer once.
func consumerBinary(t *testing.T) string {
	t.Helper()
	consumerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "outbox-cdc-consumer-")
		if err != nil {
			consumerErr = err
			return
		}
		registerClose(func() { os.RemoveAll(dir) })
		consumerBin = filepath.Join(dir, "consumer")
		out, err := exec.Command("go", "build", "-o", consumerBin, "github.com/outbox-cdc/outbox-cdc/test/consumer").CombinedOutput()
		if err != nil {
			consumerErr = fmt.Errorf("building test/consumer: %v\n%s", err, out)
		}
	})
	if consumerErr != nil {
		t.Fatal(consumerErr)
	}
	return consumerBin
}

// testEvent is one event the tests publish: seq counts per key from 0.
type testEvent struct {
	key        string
	seq        int
	id         string
	structured bool
}

func (e testEvent) data() []byte { return fmt.Appendf(nil, `{"agg":%q,"seq":%d}`, e.key, e.seq) }

func (e testEvent) structuredJSON() []byte {
	b, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": e.id, "source": "/handlers-test", "type": "test.event",
		"partitionkey": e.key, "datacontenttype": "application/json", "data": json.RawMessage(e.data())})
	return b
}

func makeEvents(n, keys int, rng *rand.Rand) []testEvent {
	next := make([]int, keys)
	evs := make([]testEvent, n)
	for i := range evs {
		k := rng.IntN(keys)
		evs[i] = testEvent{key: fmt.Sprintf("k%d", k), seq: next[k], id: fmt.Sprintf("ev-%d", i), structured: rng.IntN(2) == 0}
		next[k]++
	}
	return evs
}

// hbroker is a broker as the handler tests use it: publish events, and
// tell whether the consumer group has read and settled everything.
type hbroker struct {
	name    string
	env     []string
	publish func(t *testing.T, evs []testEvent)
	drained func(t *testing.T, group string) bool
}

func kafkaHandlers(t *testing.T) *hbroker {
	k := kafkaBroker(t).(*kafkaKit)
	topic := fmt.Sprintf("handlers-%d-%d", time.Now().UnixNano(), topicSeq.Add(1))
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.k.Addr()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	return &hbroker{
		name: "kafka",
		env:  []string{"BROKER=kafka", "KAFKA_BROKERS=" + k.k.Addr(), "TOPIC=" + topic},
		publish: func(t *testing.T, evs []testEvent) {
			var recs []*kgo.Record
			for _, e := range evs {
				r := &kgo.Record{Key: []byte(e.key)}
				if e.structured {
					r.Value = e.structuredJSON()
					r.Headers = []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json; charset=utf-8")}}
				} else {
					r.Value = e.data()
					for _, h := range [][2]string{{"ce_specversion", "1.0"}, {"ce_id", e.id}, {"ce_source", "/handlers-test"},
						{"ce_type", "test.event"}, {"ce_partitionkey", e.key}, {"content-type", "application/json"}} {
						r.Headers = append(r.Headers, kgo.RecordHeader{Key: h[0], Value: []byte(h[1])})
					}
				}
				recs = append(recs, r)
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		},
		drained: func(t *testing.T, group string) bool {
			ends, err := adm.ListEndOffsets(ctx, topic)
			if err != nil {
				return false
			}
			committed, err := adm.FetchOffsets(ctx, group)
			if err != nil {
				return false
			}
			ok := true
			ends.Each(func(o kadm.ListedOffset) {
				c, found := committed.Lookup(o.Topic, o.Partition)
				if !found || c.At < o.Offset {
					ok = false
				}
			})
			return ok
		},
	}
}

func natsHandlers(t *testing.T) *hbroker {
	n := natsBroker(t).(*natsKit)
	nc, err := natsgo.Connect(n.n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream := fmt.Sprintf("HANDLERS%d", time.Now().UnixNano())
	subj := strings.ToLower(stream)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subj + ".>"}}); err != nil {
		t.Fatal(err)
	}
	return &hbroker{
		name: "nats",
		env:  []string{"BROKER=nats", "NATS_URL=" + n.n.URL(), "STREAM=" + stream},
		publish: func(t *testing.T, evs []testEvent) {
			for _, e := range evs {
				m := natsgo.NewMsg(subj + ".test")
				if e.structured {
					m.Data = e.structuredJSON()
					m.Header.Set("Content-Type", "application/cloudevents+json")
				} else {
					m.Data = e.data()
					for _, h := range [][2]string{{"ce-specversion", "1.0"}, {"ce-id", e.id}, {"ce-source", "%2Fhandlers-test"},
						{"ce-type", "test.event"}, {"ce-partitionkey", e.key}, {"ce-datacontenttype", "application/json"}} {
						m.Header.Set(h[0], h[1])
					}
				}
				if _, err := js.PublishMsgAsync(m); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				t.Fatal("publishing to JetStream did not complete")
			}
		},
		drained: func(t *testing.T, group string) bool {
			c, err := js.Consumer(ctx, stream, group)
			if err != nil {
				return false
			}
			info, err := c.Info(ctx)
			return err == nil && info.NumPending == 0 && info.NumAckPending == 0
		},
	}
}

func redisHandlers(t *testing.T) *hbroker {
	r := redisBroker(t).(*redisKit)
	c := goredis.NewClient(&goredis.Options{Addr: r.r.Addr()})
	t.Cleanup(func() { c.Close() })
	stream := fmt.Sprintf("handlers:%d", time.Now().UnixNano())
	ctx := context.Background()
	return &hbroker{
		name: "redis",
		env:  []string{"BROKER=redis", "REDIS_ADDR=" + r.r.Addr(), "STREAM=" + stream},
		publish: func(t *testing.T, evs []testEvent) {
			for i := 0; i < len(evs); i += 500 {
				_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
					for _, e := range evs[i:min(i+500, len(evs))] {
						var vals []any
						if e.structured {
							vals = []any{"event", string(e.structuredJSON())}
						} else {
							vals = []any{"specversion", "1.0", "id", e.id, "source", "/handlers-test", "type", "test.event",
								"datacontenttype", "application/json", "partitionkey", e.key, "data", string(e.data())}
						}
						p.XAdd(ctx, &goredis.XAddArgs{Stream: stream, Values: vals})
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
		},
		drained: func(t *testing.T, group string) bool {
			gs, err := c.XInfoGroups(ctx, stream).Result()
			if err != nil {
				return false
			}
			for _, g := range gs {
				if g.Name == group {
					return g.Pending == 0 && g.Lag == 0
				}
			}
			return false
		},
	}
}

func handlerBrokers() []func(*testing.T) *hbroker {
	return []func(*testing.T) *hbroker{kafkaHandlers, natsHandlers, redisHandlers}
}

// consumerDB is a fresh database with the inbox and the applied table.
type consumerDB struct {
	url  string
	pool *pgxpool.Pool
}

func newConsumerDB(t *testing.T) *consumerDB {
	t.Helper()
	p := needPostgres(t)
	ctx := context.Background()
	db := fmt.Sprintf("h%d_%d", os.Getpid(), dbSeq.Add(1))
	if err := p.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, p.URL(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := inbox.Migrate(ctx, pool, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE applied (pos bigserial PRIMARY KEY, key text NOT NULL, seq int NOT NULL, id text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE deliveries (id text NOT NULL, redelivered bool NOT NULL, position text NOT NULL);
CREATE TABLE fail_events (id text PRIMARY KEY);
CREATE TABLE attempts (id text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`); err != nil {
		t.Fatal(err)
	}
	return &consumerDB{url: p.URL(db), pool: pool}
}

func (c *consumerDB) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := c.pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkApplied asserts that every event took effect exactly once and, per
// key, in publication order.
func (c *consumerDB) checkApplied(t *testing.T, evs []testEvent) {
	t.Helper()
	c.checkAppliedExcept(t, evs, nil)
}

// checkAppliedExcept is checkApplied that does not check the order of the
// keys in unordered (events of theirs were parked and replayed, or were
// read by several consumers at once).
func (c *consumerDB) checkAppliedExcept(t *testing.T, evs []testEvent, unordered map[string]bool) {
	t.Helper()
	rows, err := c.pool.Query(context.Background(), "SELECT key, seq, id FROM applied ORDER BY pos")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	next := map[string]int{}
	seen := map[string]int{}
	n := 0
	for rows.Next() {
		var key, id string
		var seq int
		if err := rows.Scan(&key, &seq, &id); err != nil {
			t.Fatal(err)
		}
		n++
		seen[id]++
		if seen[id] > 1 {
			t.Fatalf("event %s (key %s seq %d) took effect %d times", id, key, seq, seen[id])
		}
		if seq != next[key] && !unordered[key] {
			t.Fatalf("key %s: seq %d took effect after seq %d: per-key order broken", key, seq, next[key]-1)
		}
		next[key]++
	}
	if n != len(evs) {
		t.Fatalf("%d events took effect, want %d", n, len(evs))
	}
}

// waitForApplied waits until n events took effect and the group settled
// everything it read.
func waitForApplied(t *testing.T, db *consumerDB, b *hbroker, group string, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got := db.count(t, "SELECT count(*) FROM applied")
		drained := b.drained(t, group)
		if got >= n && drained {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %d of %d events took effect; group drained: %v", got, n, drained)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consumerProc is a running test consumer.
type consumerProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startConsumer(t *testing.T, db *consumerDB, b *hbroker, extra ...string) *consumerProc {
	t.Helper()
	cmd := exec.Command(consumerBinary(t))
	cmd.Env = append(append(append(os.Environ(), "PG_URL="+db.url), b.env...), extra...)
	return startProc(t, cmd)
}

// startProc starts cmd with its output in a log file; it is killed at the
// end of the test.
func startProc(t *testing.T, cmd *exec.Cmd) *consumerProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "consumer.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &consumerProc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("consumer log %s:\n%s", logPath, tail(string(b), 40))
		}
	})
	return p
}

func (p *consumerProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *consumerProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatal("consumer did not stop within a minute of SIGTERM")
	}
}

func (p *consumerProc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// Acceptance 1: for each broker, 10,000 events over 100 keys in both
// content modes; 10% of them published again; the consumer SIGKILLed twice
// mid-handler. Every event takes effect exactly once, per key in order.
func TestHandlersExactlyOnceAcrossKills(t *testing.T) {
	for _, get := range handlerBrokers() {
		b := get(t)
		t.Run(b.name, func(t *testing.T) {
			db := newConsumerDB(t)
			rng := rand.New(rand.NewPCG(12, 12))
			evs := makeEvents(10000, 100, rng)
			b.publish(t, evs)
			p := startConsumer(t, db, b, "INSTANCE_ID=i1")
			applied := func() int { return db.count(t, "SELECT count(*) FROM applied") }
			waitFor(t, 2*time.Minute, "2,500 events applied", func() bool { return applied() >= 2500 })
			p.kill()
			p = startConsumer(t, db, b, "INSTANCE_ID=i1")
			// 10% again, in either mode, as a producer's retry would.
			var again []testEvent
			for _, i := range rng.Perm(len(evs))[:len(evs)/10] {
				e := evs[i]
				e.structured = rng.IntN(2) == 0
				again = append(again, e)
			}
			b.publish(t, again)
			waitFor(t, 2*time.Minute, "6,000 events applied", func() bool { return applied() >= 6000 })
			p.kill()
			p = startConsumer(t, db, b, "INSTANCE_ID=i1")
			waitForApplied(t, db, b, "test-consumer", len(evs))
			db.checkApplied(t, evs)
			if n := db.count(t, "SELECT count(*) FROM outbox_inbox WHERE state = 'done'"); n != len(evs) {
				t.Fatalf("inbox holds %d done events, want %d", n, len(evs))
			}
			p.stop(t)
		})
	}
}

// Acceptance 2: a handler that fails for one event: its attempts are
// retried with backoff while other keys keep flowing, the event is parked
// after the limit (3 here), its key moves on, and `outbox-cdc inbox
// replay` runs it once.
func TestHandlersFailingEventParkedAndReplayed(t *testing.T) {
	b := redisHandlers(t)
	db := newConsumerDB(t)
	evs := makeEvents(2000, 20, rand.New(rand.NewPCG(13, 13)))
	bad := evs[30]
	if _, err := db.pool.Exec(context.Background(), "INSERT INTO fail_events VALUES ($1)", bad.id); err != nil {
		t.Fatal(err)
	}
	b.publish(t, evs)
	p := startConsumer(t, db, b, "FAIL_EVENTS=1", "HANDLER_SLEEP=1ms")
	waitFor(t, 2*time.Minute, "every other event applied and the failing one parked", func() bool {
		return db.count(t, "SELECT count(*) FROM applied") == len(evs)-1 &&
			db.count(t, "SELECT count(*) FROM outbox_inbox WHERE state = 'parked'") == 1
	})
	if n := db.count(t, "SELECT count(*) FROM attempts WHERE id = $1", bad.id); n != 3 {
		t.Fatalf("the failing event was tried %d times, want 3 (Attempts)", n)
	}
	var attempts int
	var reason, state string
	if err := db.pool.QueryRow(context.Background(), "SELECT attempts, reason, state FROM outbox_inbox WHERE id = $1", bad.id).Scan(&attempts, &reason, &state); err != nil {
		t.Fatal(err)
	}
	if attempts != 3 || !strings.Contains(reason, "made to fail") {
		t.Fatalf("parked with attempts %d, reason %q", attempts, reason)
	}
	// Other keys flowed while it was retried.
	if n := db.count(t, `SELECT count(*) FROM applied WHERE key <> $1
		AND at > (SELECT min(at) FROM attempts) AND at < (SELECT max(at) FROM attempts)`, bad.key); n == 0 {
		t.Fatal("no event of another key took effect between the failing event's first and last attempt")
	}
	// Its own key moved on after it was parked.
	if n := db.count(t, "SELECT count(*) FROM applied WHERE key = $1 AND seq > $2", bad.key, bad.seq); n == 0 {
		t.Fatalf("key %s did not move on after its event was parked", bad.key)
	}
	list, err := exec.Command(binary, "inbox", "list", "--url", db.url).CombinedOutput()
	if err != nil || !strings.Contains(string(list), bad.id) || !strings.Contains(string(list), "parked") {
		t.Fatalf("inbox list: %v\n%s", err, list)
	}
	// Fixed: replay it.
	if _, err := db.pool.Exec(context.Background(), "DELETE FROM fail_events"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "inbox", "replay", "--url", db.url, "--consumer", "test-consumer", bad.id).CombinedOutput()
	if err != nil {
		t.Fatalf("inbox replay: %v\n%s", err, out)
	}
	waitFor(t, time.Minute, "the replayed event to take effect", func() bool {
		return db.count(t, "SELECT count(*) FROM outbox_inbox WHERE id = $1 AND state = 'done'", bad.id) == 1
	})
	// The same event delivered again is skipped.
	b.publish(t, []testEvent{bad})
	waitForApplied(t, db, b, "test-consumer", len(evs))
	db.checkAppliedExcept(t, evs, map[string]bool{bad.key: true})
	if n := db.count(t, "SELECT count(*) FROM attempts WHERE id = $1", bad.id); n != 3 {
		t.Fatalf("the replayed event failed again (%d attempts)", n)
	}
	p.stop(t)
}

// Acceptance 3: a Redis consumer killed with entries pending on it; a
// second consumer claims them (XAUTOCLAIM) and processes them, nothing
// lost. The second one deletes idle consumers, but never one that still
// has pending entries: that would drop them from the group for good.
func TestRedisDeadConsumerEntriesClaimed(t *testing.T) {
	b := redisHandlers(t)
	db := newConsumerDB(t)
	evs := makeEvents(600, 10, rand.New(rand.NewPCG(14, 14)))
	b.publish(t, evs)
	a := startConsumer(t, db, b, "MEMBER=a", "HANDLER_SLEEP=40ms", "CONCURRENCY=2")
	waitFor(t, time.Minute, "consumer a to apply some events", func() bool { return db.count(t, "SELECT count(*) FROM applied") >= 40 })
	a.kill()
	r := redisBroker(t).(*redisKit)
	c := goredis.NewClient(&goredis.Options{Addr: r.r.Addr()})
	defer c.Close()
	stream := strings.TrimPrefix(b.env[2], "STREAM=")
	pend, err := c.XPendingExt(context.Background(), &goredis.XPendingExtArgs{Stream: stream, Group: "test-consumer", Start: "-", End: "+", Count: 10000, Consumer: "a"}).Result()
	if err != nil || len(pend) == 0 {
		t.Fatalf("consumer a left %d entries pending (%v); the test needs some", len(pend), err)
	}
	t.Logf("consumer a killed with %d entries pending", len(pend))
	bp := startConsumer(t, db, b, "MEMBER=b", "HANDLER_SLEEP=0", "CLAIM_IDLE=1s", "DELETE_IDLE=300ms")
	waitForApplied(t, db, b, "test-consumer", len(evs))
	keys := map[string]bool{}
	for _, e := range evs {
		keys[e.key] = true // claimed entries may run after later ones of their key
	}
	db.checkAppliedExcept(t, evs, keys)
	if !strings.Contains(bp.logText(), "claimed entries left pending by other consumers") {
		t.Fatal("consumer b did not say it claimed entries")
	}
	bp.stop(t)
}

// Acceptance 4 (JetStream): handlers slower than AckWait, with messages
// prefetched behind them, on two consumers sharing one durable. In-progress
// acks keep JetStream from redelivering what is held (no redelivery at
// all), and every event takes effect once.
func TestJetStreamSlowHandlersNoRedelivery(t *testing.T) {
	b := natsHandlers(t)
	db := newConsumerDB(t)
	evs := makeEvents(80, 8, rand.New(rand.NewPCG(15, 15)))
	b.publish(t, evs)
	common := []string{"ACK_WAIT=1s", "HANDLER_SLEEP=1500ms", "CONCURRENCY=4", "RECORD_DELIVERIES=1"}
	p1 := startConsumer(t, db, b, common...)
	p2 := startConsumer(t, db, b, common...)
	waitForApplied(t, db, b, "test-consumer", len(evs))
	keys := map[string]bool{}
	for _, e := range evs {
		keys[e.key] = true // two instances share the durable: no per-key order between them
	}
	db.checkAppliedExcept(t, evs, keys)
	if n := db.count(t, "SELECT count(*) FROM deliveries WHERE redelivered"); n != 0 {
		t.Fatalf("%d deliveries were redeliveries: JetStream redelivered messages a consumer still held", n)
	}
	p1.stop(t)
	p2.stop(t)
}

// Acceptance 4 (Kafka): a second member joins the group mid-stream while
// handlers run. The first hands back the revoked partitions only after
// their running records were handled and committed, and starts none of
// their queued ones: nothing is lost, nothing takes effect twice, and per
// key the effects keep their order across the move.
func TestKafkaRebalanceHandleThenCommit(t *testing.T) {
	b := kafkaHandlers(t)
	db := newConsumerDB(t)
	evs := makeEvents(4000, 40, rand.New(rand.NewPCG(16, 16)))
	b.publish(t, evs)
	common := []string{"HANDLER_SLEEP=6ms", "CONCURRENCY=4"}
	pa := startConsumer(t, db, b, common...)
	waitFor(t, time.Minute, "the first member to apply 600 events", func() bool { return db.count(t, "SELECT count(*) FROM applied") >= 600 })
	t0 := time.Now()
	pb := startConsumer(t, db, b, common...)
	waitFor(t, time.Minute, "the rebalance", func() bool { return strings.Contains(pa.logText(), "partitions revoked") })
	t.Logf("rebalanced after %v, %d applied", time.Since(t0), db.count(t, "SELECT count(*) FROM applied"))
	waitForApplied(t, db, b, "test-consumer", len(evs))
	t.Logf("all applied after %v", time.Since(t0))
	db.checkApplied(t, evs)
	if !strings.Contains(pb.logText(), "partitions assigned") {
		t.Fatal("the second member got no partitions")
	}
	pa.stop(t)
	pb.stop(t)
}

// The inbox prunes handled rows by age and keeps parked ones; the Redis
// store skips a done event and reports one running elsewhere as busy.
func TestInboxPruneAndRedisStore(t *testing.T) {
	db := newConsumerDB(t)
	ctx := context.Background()
	if _, err := db.pool.Exec(ctx, `INSERT INTO outbox_inbox (consumer, source, id, state, updated_at) VALUES
		('c', '/s', 'old', 'done', now() - interval '2 hours'), ('c', '/s', 'new', 'done', now()),
		('c', '/s', 'parked', 'parked', now() - interval '2 hours'), ('c', '/s', 'gone', 'discarded', now() - interval '2 hours')`); err != nil {
		t.Fatal(err)
	}
	ib, err := inbox.New(db.pool, inbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := ib.Prune(ctx, time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want 2", n, err)
	}
	if left := db.count(t, "SELECT count(*) FROM outbox_inbox WHERE id IN ('new', 'parked')"); left != 2 {
		t.Fatalf("%d of the recent and the parked row left", left)
	}

	r := redisBroker(t).(*redisKit)
	c := goredis.NewClient(&goredis.Options{Addr: r.r.Addr()})
	defer c.Close()
	st := inbox.NewRedis(c, inbox.RedisConfig{Prefix: fmt.Sprintf("t%d", time.Now().UnixNano())})
	ev := cloudevents.New()
	ev.SetID("1")
	ev.SetSource("/s")
	ev.SetType("t")
	runs := 0
	run := func(context.Context) error { runs++; return nil }
	if err := st.Once(ctx, "c", &ev, run); err != nil {
		t.Fatal(err)
	}
	if err := st.Once(ctx, "c", &ev, run); !errors.Is(err, handler.ErrDuplicate) || runs != 1 {
		t.Fatalf("second run: %v, %d runs", err, runs)
	}
	ev.SetID("2")
	block := make(chan struct{})
	started := make(chan struct{})
	go st.Once(ctx, "c", &ev, func(context.Context) error { close(started); <-block; return nil })
	<-started
	if err := st.Once(ctx, "c", &ev, run); !errors.Is(err, handler.ErrBusy) {
		t.Fatalf("while another delivery runs it: %v, want ErrBusy", err)
	}
	close(block)
}
