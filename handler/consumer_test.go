package handler_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/outbox-cdc/outbox-cdc/handler"
)

// sliceSource submits a fixed list of events and records how each was
// settled.
type sliceSource struct {
	events []cloudevents.Event
	mu     sync.Mutex
	acked  map[string]int
	naked  map[string]int
	done   chan struct{}
}

func newSliceSource(evs []cloudevents.Event) *sliceSource {
	return &sliceSource{events: evs, acked: map[string]int{}, naked: map[string]int{}, done: make(chan struct{})}
}

func (s *sliceSource) Run(ctx context.Context, q handler.Queue) error {
	var left atomic.Int64
	left.Store(int64(len(s.events)))
	settle := func(m map[string]int, id string) {
		s.mu.Lock()
		m[id]++
		s.mu.Unlock()
		if left.Add(-1) == 0 {
			close(s.done)
		}
	}
	for _, e := range s.events {
		id := e.ID()
		d := &handler.Delivery{Event: e, Key: handler.Key(&e, ""), Position: id,
			Ack: func() { settle(s.acked, id) },
			Nak: func(time.Duration) { settle(s.naked, id) }}
		if err := q.Submit(ctx, d); err != nil {
			return err
		}
	}
	<-ctx.Done()
	q.Drain()
	return nil
}

func ev(key string, seq int) cloudevents.Event {
	e := cloudevents.New()
	e.SetID(fmt.Sprintf("%s-%d", key, seq))
	e.SetSource("/test")
	e.SetType("com.example.order.created")
	e.SetExtension("partitionkey", key)
	_ = e.SetData("application/json", map[string]int{"seq": seq})
	return e
}

func TestRouterMatch(t *testing.T) {
	r := handler.NewRouter()
	nop := func(context.Context, cloudevents.Event) error { return nil }
	r.Handle("com.example.order.*", nop)
	r.Handle("com.example.order.created", nop)
	r.Handle("*.deleted", nop)
	for typ, want := range map[string]string{
		"com.example.order.created": "com.example.order.created",
		"com.example.order.paid":    "com.example.order.*",
		"com.example.user.deleted":  "*.deleted",
	} {
		if p, _, ok := r.Match(typ); !ok || p != want {
			t.Errorf("Match(%q) = %q, %v; want %q", typ, p, ok, want)
		}
	}
	if _, _, ok := r.Match("other"); ok {
		t.Error("Match(other) matched")
	}
	defer func() {
		if recover() == nil {
			t.Error("Handle after dispatch did not panic")
		}
	}()
	r.Handle("late", nop)
}

// Per-key order holds while keys run concurrently, and a key that fails
// does not hold the others.
func TestPerKeyOrderAndRetry(t *testing.T) {
	var evs []cloudevents.Event
	for seq := range 50 {
		for k := range 8 {
			evs = append(evs, ev(fmt.Sprintf("k%d", k), seq))
		}
	}
	var mu sync.Mutex
	last := map[string]int{}
	failed := map[string]bool{}
	r := handler.NewRouter()
	r.Handle("com.example.order.*", func(ctx context.Context, e cloudevents.Event) error {
		var d struct{ Seq int }
		_ = e.DataAs(&d)
		k := e.Extensions()["partitionkey"].(string)
		mu.Lock()
		defer mu.Unlock()
		if k == "k3" && d.Seq == 5 && !failed[e.ID()] {
			failed[e.ID()] = true
			return errors.New("first attempt fails")
		}
		if want := last[k]; d.Seq != want {
			t.Errorf("key %s: seq %d ran, want %d", k, d.Seq, want)
		}
		last[k] = d.Seq + 1
		return nil
	})
	src := newSliceSource(evs)
	c, err := handler.NewConsumer(handler.Config{Name: "t", Concurrency: 4, MaxBuffered: 64, Backoff: handler.Backoff{Initial: time.Millisecond}}, r, src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-src.done:
	case <-time.After(10 * time.Second):
		t.Fatal("not every event was settled")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for k, n := range last {
		if n != 50 {
			t.Errorf("key %s: %d events ran", k, n)
		}
	}
	if len(src.acked) != len(evs) {
		t.Errorf("%d acked, want %d", len(src.acked), len(evs))
	}
}

type memDead struct {
	mu     sync.Mutex
	parked []handler.Parked
}

func (m *memDead) Park(_ context.Context, _ string, p handler.Parked) error {
	m.mu.Lock()
	m.parked = append(m.parked, p)
	m.mu.Unlock()
	return nil
}
func (m *memDead) Replays(context.Context, string, int) ([]handler.Parked, error) { return nil, nil }

type memStore struct{}

func (memStore) Once(ctx context.Context, _ string, _ *cloudevents.Event, fn func(context.Context) error) error {
	return fn(ctx)
}

func TestParkAfterAttempts(t *testing.T) {
	evs := []cloudevents.Event{ev("a", 0), ev("a", 1), ev("b", 0)}
	var calls atomic.Int32
	r := handler.NewRouter()
	r.Handle("com.example.order.created", func(ctx context.Context, e cloudevents.Event) error {
		if e.ID() == "a-0" {
			calls.Add(1)
			return errors.New("boom")
		}
		return nil
	})
	dead := &memDead{}
	src := newSliceSource(evs)
	c, err := handler.NewConsumer(handler.Config{Name: "t", Attempts: 3, Backoff: handler.Backoff{Initial: time.Millisecond},
		Store: memStore{}, DeadLetters: dead}, r, src)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(ctx)
	<-src.done
	if calls.Load() != 3 || len(dead.parked) != 1 || dead.parked[0].Attempts != 3 || dead.parked[0].Reason != "boom" {
		t.Fatalf("calls %d, parked %+v", calls.Load(), dead.parked)
	}
	if src.acked["a-1"] != 1 || src.acked["a-0"] != 1 {
		t.Fatalf("acked %v", src.acked)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := handler.NewConsumer(handler.Config{}, handler.NewRouter(), newSliceSource(nil))
	var ce *handler.ConfigError
	if !errors.As(err, &ce) || ce.Field != "Config.Name" {
		t.Fatalf("err %v", err)
	}
	_, err = handler.NewConsumer(handler.Config{Name: "x", DeadLetters: &memDead{}}, handler.NewRouter(), newSliceSource(nil))
	if !errors.As(err, &ce) || ce.Field != "Config.DeadLetters" {
		t.Fatalf("err %v", err)
	}
}

func TestParseTraceparent(t *testing.T) {
	tc, ok := handler.ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if !ok || !tc.Sampled() || tc.String() != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("%v %v", tc, ok)
	}
	for _, bad := range []string{"", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		if _, ok := handler.ParseTraceparent(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}
