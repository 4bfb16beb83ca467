package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// brokersEnv names the real Apache Kafka brokers (comma separated) that the
// suite runs against besides kfake. The test harness sets it.
const brokersEnv = "OUTBOX_CDC_KAFKA_BROKERS"

// cluster is one place the suite runs: an in-process kfake cluster or the
// real brokers from OUTBOX_CDC_KAFKA_BROKERS.
type cluster struct {
	name    string
	brokers []string
	fake    *kfake.Cluster // nil for a real broker
	adm     *kadm.Client
}

func (c *cluster) real() bool { return c.fake == nil }

// eachCluster runs fn against kfake and, when OUTBOX_CDC_KAFKA_BROKERS is
// set, against the real brokers. Without the variable the real run is
// skipped on a developer machine and fails in CI.
func eachCluster(t *testing.T, fn func(t *testing.T, c *cluster)) {
	t.Helper()
	t.Run("kfake", func(t *testing.T) {
		fn(t, newFakeCluster(t))
	})
	t.Run("kafka", func(t *testing.T) {
		fn(t, realCluster(t))
	})
}

func newFakeCluster(t testing.TB, opts ...kfake.Opt) *cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)
	fc, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(fc.Close)
	return newCluster(t, "kfake", fc.ListenAddrs(), fc)
}

// realCluster returns the brokers from OUTBOX_CDC_KAFKA_BROKERS or, without
// it, a single KRaft broker the harness starts once for the whole package
// (TestMain closes it). Without the Kafka jars the test skips on a developer
// machine and fails in CI.
func realCluster(t testing.TB) *cluster {
	t.Helper()
	v := os.Getenv(brokersEnv)
	if v == "" {
		harnessKafkaOnce.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			harnessKafka, harnessKafkaErr = harness.StartKafka(ctx, harness.KafkaOptions{})
		})
		harness.SkipIfNotInstalled(t, "kafka", harnessKafkaErr)
		v = strings.Join(harnessKafka.Brokers(), ",")
	}
	return newCluster(t, "kafka", strings.Split(v, ","), nil)
}

var (
	harnessKafkaOnce sync.Once
	harnessKafka     *harness.Kafka
	harnessKafkaErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if harnessKafka != nil {
		harnessKafka.Close()
	}
	os.Exit(code)
}

func newCluster(t testing.TB, name string, brokers []string, fc *kfake.Cluster) *cluster {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &cluster{name: name, brokers: brokers, fake: fc, adm: kadm.NewClient(cl)}
}

func uniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// createTopic creates a uniquely named topic and deletes it after the test.
func (c *cluster) createTopic(t testing.TB, partitions int32, configs map[string]string) string {
	t.Helper()
	name := uniqueName("outbox-test")
	c.createNamedTopic(t, name, partitions, configs)
	return name
}

func (c *cluster) createNamedTopic(t testing.TB, name string, partitions int32, configs map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cfgs map[string]*string
	for k, v := range configs {
		if cfgs == nil {
			cfgs = map[string]*string{}
		}
		cfgs[k] = &v
	}
	resp, err := c.adm.CreateTopic(ctx, partitions, -1, cfgs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	c.deleteAfter(t, name)
	c.waitTopic(t, name)
}

func (c *cluster) deleteAfter(t testing.TB, names ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = c.adm.DeleteTopics(ctx, names...)
	})
}

// waitTopic waits until the topic's partitions all have leaders.
func (c *cluster) waitTopic(t testing.TB, name string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		td, err := c.adm.ListTopics(ctx, name)
		cancel()
		if err == nil && td[name].Err == nil && len(td[name].Partitions) > 0 {
			ready := true
			for _, p := range td[name].Partitions {
				ready = ready && p.Leader >= 0 && p.Err == nil
			}
			if ready {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("topic %s has no leaders after 20s", name)
}

// config returns a sink config for this cluster with test-friendly timeouts.
func (c *cluster) config(topic string) Config {
	return Config{
		Brokers:        c.brokers,
		Topic:          topic,
		ConnectTimeout: 5 * time.Second,
	}
}

func testOptions(t *testing.T) (sink.Options, *sinktest.Recorder, *sinktest.Log) {
	rec := sinktest.NewRecorder()
	logs := &sinktest.Log{}
	return sinktest.Options("kafka-test", rec, logs.Logger(slog.LevelInfo)), rec, logs
}

// retries returns the failed attempts rec saw.
func retries(rec *sinktest.Recorder) int64 {
	n, _ := rec.Retries()
	return int64(n)
}

func newSink(t *testing.T, cfg Config, opts sink.Options) *Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// makeEvents returns n test events (sinktest.Events) of one aggregate
// type, spread over the aggregates round robin.
func makeEvents(n int, aggregateType string, aggregates []string) []*event.Event {
	return sinktest.Events{Keys: aggregates, Types: []string{aggregateType}}.Make(0, n)
}

// publishAll publishes evs in chunks and flushes.
func publishAll(t *testing.T, s *Sink, evs []*event.Event, chunk int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < len(evs); i += chunk {
		if err := s.Publish(ctx, evs[i:min(i+chunk, len(evs))]); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// consume reads n records from the topics with an independent franz-go
// consumer, in a consumer group when group is true (else by partition
// assignment from the start), and fails on more than n.
func (c *cluster) consume(t testing.TB, n int, group bool, topics ...string) []*kgo.Record {
	t.Helper()
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.brokers...),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}
	if group {
		opts = append(opts, kgo.ConsumerGroup(uniqueName("outbox-test-group")))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before timeout", len(recs), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		recs = append(recs, fs.Records()...)
	}
	// Anything beyond n (a duplicate) arrives within a short extra poll.
	extra, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	recs = append(recs, cl.PollFetches(extra).Records()...)
	if len(recs) != n {
		t.Fatalf("consumed %d records, want exactly %d", len(recs), n)
	}
	return recs
}
