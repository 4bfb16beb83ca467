package kafka

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/outbox-cdc/outbox-cdc/sink"
)

// TestBrokerDown stops the broker, publishes, sees no acknowledgement (and
// Publish blocking at the in-flight limit), starts the broker again and sees
// every event acknowledged once and stored once, in order.
func TestBrokerDown(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	topic := "outbox-down"
	start := func() *kfake.Cluster {
		t.Helper()
		var fc *kfake.Cluster
		var err error
		for range 50 { // the port may linger briefly after Close
			if fc, err = kfake.NewCluster(kfake.Ports(port), kfake.DataDir(dir), kfake.SeedTopics(2, topic)); err == nil {
				return fc
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("kfake: %v", err)
		return nil
	}
	fc := start()
	c := newCluster(t, "kfake", fc.ListenAddrs(), fc)

	cfg := c.config(topic)
	cfg.MaxInFlight = 100
	cfg.Retry.Max = 200 * time.Millisecond
	opts, rec, logs := testOptions(t)
	s := newSink(t, cfg, opts)
	evs := makeEvents(250, "order", []string{"a", "b", "c", "d", "e"})
	publishAll(t, s, evs[:50], 10)
	rec.CheckEach(t, evs[:50])

	fc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// 100 fit in flight; the 101st blocks until ctx expires.
	if err := s.Publish(ctx, evs[50:150]); err != nil {
		t.Fatalf("Publish while down: %v", err)
	}
	if err := s.Publish(ctx, evs[150:151]); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish over the in-flight limit: %v, want it to block until the deadline", err)
	}
	if err := s.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush while down: %v, want deadline exceeded", err)
	}
	if n := int64(rec.Acks()); n != 50 {
		t.Fatalf("%d events acknowledged while the broker was down, want 50", n)
	}
	if retries(rec) == 0 {
		t.Fatal("no Retried signal while the broker was down")
	}
	if s.Failure() != nil {
		t.Fatalf("broker down surfaced as permanent: %v", s.Failure())
	}

	fc = start()
	defer fc.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if err := s.Publish(ctx2, evs[150:]); err != nil {
		t.Fatalf("Publish after restart: %v", err)
	}
	if err := s.Flush(ctx2); err != nil {
		t.Fatalf("Flush after restart: %v", err)
	}
	rec.CheckEach(t, evs)
	if n := logs.Count("sink cannot deliver"); n != 1 {
		t.Fatalf("%d 'cannot deliver' log lines, want 1:\n%s", n, logs)
	}
	if n := logs.Count("sink recovered"); n != 1 {
		t.Fatalf("%d 'recovered' log lines, want 1:\n%s", n, logs)
	}
	t.Logf("log:\n%s", logs)
	c2 := newCluster(t, "kfake", fc.ListenAddrs(), fc)
	checkRecords(t, c2.consume(t, len(evs), false, topic), evs, false)
}

// TestTransientErrors makes the broker answer produce requests with
// retriable errors, including REQUEST_TIMED_OUT after storing the batch:
// franz-go resends with the same sequence numbers, the broker drops the
// copy, and every event is stored once, in order, acknowledged once.
func TestTransientErrors(t *testing.T) {
	c := newFakeCluster(t)
	topic := c.createTopic(t, 2, nil)
	for _, code := range faultCodes {
		c.fake.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: code, Count: 3})
	}
	opts, rec, _ := testOptions(t)
	s := newSink(t, c.config(topic), opts)
	evs := makeEvents(300, "order", []string{"a", "b", "c", "d"})
	publishAll(t, s, evs, 25)
	rec.CheckEach(t, evs)
	checkRecords(t, c.consume(t, len(evs), false, topic), evs, false)
	if int64(rec.Duplicates()) != 0 {
		t.Fatal("Duplicate signalled")
	}
}

// TestTopicAuthorization: a principal that may describe but not write the
// topic gets TOPIC_AUTHORIZATION_FAILED from the broker, reported as a
// PermanentError naming the first event; nothing is acknowledged.
func TestTopicAuthorization(t *testing.T) {
	const topic = "outbox-acl"
	allow := func(res kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	c := newFakeCluster(t,
		kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("PLAIN", "admin", "admin-secret"),
		kfake.User("PLAIN", "reader", "reader-secret",
			allow(kmsg.ACLResourceTypeTopic, topic, kmsg.ACLOperationDescribe),
			allow(kmsg.ACLResourceTypeTopic, topic, kmsg.ACLOperationDescribeConfigs),
			allow(kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLOperationIdempotentWrite),
		),
		kfake.SeedTopics(1, topic),
	)
	cfg := c.config(topic)
	cfg.SASL = SASLConfig{Mechanism: "PLAIN", Username: "reader", Password: "reader-secret"}
	opts, rec, _ := testOptions(t)
	s := newSink(t, cfg, opts)
	evs := makeEvents(10, "order", []string{"a"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Publish(ctx, evs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	err := s.Flush(ctx)
	var pe *sink.PermanentError
	if !errors.As(err, &pe) || pe.EventID != evs[0].ID || !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("Flush: %v, want PermanentError for %s wrapping TOPIC_AUTHORIZATION_FAILED", err, evs[0].ID)
	}
	if pe.Sink != "kafka-test" {
		t.Fatalf("PermanentError names sink %q", pe.Sink)
	}
	if n := int64(rec.Acks()); n != 0 {
		t.Fatalf("%d events acknowledged", n)
	}
}

// TestCloseLeavesUnacked: closing with events in flight (broker down)
// returns promptly and acknowledges nothing; the sink refuses use after.
func TestCloseLeavesUnacked(t *testing.T) {
	fc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "kfake", fc.ListenAddrs(), fc)
	opts, rec, logs := testOptions(t)
	s, err := New(context.Background(), c.config("t"), opts)
	if err != nil {
		t.Fatal(err)
	}
	fc.Close()
	evs := makeEvents(20, "x", []string{"a"})
	if err := s.Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = s.Close(); _ = s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs")
	}
	if n := int64(rec.Acks()); n != 0 {
		t.Fatalf("%d events acknowledged after Close", n)
	}
	if err := s.Publish(context.Background(), evs); !errors.Is(err, sink.ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if s.Failure() != nil {
		t.Fatalf("Close surfaced as permanent: %v\n%s", s.Failure(), logs)
	}
}

var faultCodes = []*kerr.Error{kerr.NotLeaderForPartition, kerr.RequestTimedOut, kerr.NotEnoughReplicasAfterAppend, kerr.NotEnoughReplicas}

func freePort(t *testing.T) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(deadAddr(t))
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}
