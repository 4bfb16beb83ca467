package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/internal/fanout"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// retryFast is a backoff for tests.
var retryFast = retry.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}

// feed adds n transactions of per events each to f and c as the pipeline
// does, starting at commit LSN first (100 apart), and returns the events in
// order and the end LSN of the last transaction.
func feed(c *checkpoint.Checkpoint, f *fanout.Fanout, first uint64, n, per int) ([]*event.Event, uint64) {
	var evs []*event.Event
	var end uint64
	for i := range n {
		lsn := first + uint64(i)*100
		tx := c.Begin()
		for j := range per {
			e := &event.Event{ID: fmt.Sprintf("%d-%d", lsn, j), AggregateID: "a", CommitLSN: lsn, Seq: j, Size: 10}
			if routes := c.Add(tx, e, f.Route(e)); routes != 0 {
				f.Add(e, routes)
			}
			evs = append(evs, e)
		}
		end = lsn + 8
		c.Commit(tx, lsn, end, time.Time{})
		f.Flush()
	}
	return evs, end
}

// Pause holds a sink as a down broker would: it is handed nothing, the other
// sink goes on, its events stay unacknowledged, so the safe LSN stays put and
// the window fills (the reader would stop); its acknowledged position stays
// where it was. Resume hands it everything, in order, once: the safe LSN
// catches up and nothing is lost.
func TestPauseHoldsTheSlotAndResumeDeliversInOrder(t *testing.T) {
	t.Parallel()
	healthy, held := newRecordingSink(), newRecordingSink()
	c := checkpoint.New(checkpoint.Config{MaxEvents: 25}, 0)
	f, err := fanout.New(context.Background(), fanout.Config{Checkpoint: c, Targets: []fanout.Target{
		{Name: "healthy", Open: open(healthy), MaxBatch: 7},
		{Name: "held", Open: open(held), MaxBatch: 7},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := runFanout(t, ctx, f)

	before, end0 := feed(c, f, 100, 2, 5)
	healthy.waitFor(t, 10)
	held.waitFor(t, 10)
	waitUntil(t, "the first transactions to be safe", func() bool { return c.Safe() == end0 })

	if err := f.Pause("held"); err != nil {
		t.Fatal(err)
	}
	if err := f.Pause("held"); err != nil { // again: nothing changes
		t.Fatal(err)
	}
	during, end := feed(c, f, 1000, 6, 5)
	healthy.waitFor(t, len(during))
	time.Sleep(50 * time.Millisecond) // a paused sink would have been handed its batch by now
	if got := len(held.events()); got != len(before) {
		t.Fatalf("the paused sink was handed %d events, want %d", got, len(before))
	}
	if got := c.Safe(); got != end0 {
		t.Fatalf("Safe = %d while a sink is paused, want it held at %d", got, end0)
	}
	if c.Wait() == nil {
		t.Error("the window has room with 30 events held by a paused sink and MaxEvents 25: the reader would not stop")
	}
	st := state(t, f, "held")
	if !st.Paused || st.Pending != int64(len(during)) || st.Queued != len(during) || st.Acked != 201 {
		t.Errorf("state of the paused sink = %+v; want paused, %d pending and queued, acknowledged below 201", st, len(during))
	}
	if st := state(t, f, "healthy"); st.Paused || st.Pending != 0 || st.Acked != 1501 {
		t.Errorf("state of the healthy sink = %+v; want not paused, nothing pending, acknowledged below 1501", st)
	}

	if err := f.Resume("held"); err != nil {
		t.Fatal(err)
	}
	held.waitFor(t, len(during))
	waitUntil(t, "the slot to catch up after Resume", func() bool { return c.Safe() == end })
	if got, want := ids(held.events()), ids(append(before, during...)); got != want {
		t.Errorf("the resumed sink got %s\nwant, in order, %s", got, want)
	}
	if st := state(t, f, "held"); st.Paused || st.Pending != 0 || st.Queued != 0 || st.Acked != 1501 {
		t.Errorf("state after Resume = %+v", st)
	}
	if err := f.Resume("held"); err != nil { // not paused: nothing changes
		t.Fatal(err)
	}
	for _, err := range []error{f.Pause("nope"), f.Resume("nope")} {
		if !errors.Is(err, fanout.ErrUnknownSink) {
			t.Errorf("Pause/Resume of an unknown sink = %v, want ErrUnknownSink", err)
		}
	}
	f.Stop()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// A sink paused at the stop keeps what was queued for it: nothing is handed
// over, nothing acknowledged, so the server sends it again at the next start.
func TestStopLeavesAPausedSinksEventsUnacknowledged(t *testing.T) {
	t.Parallel()
	s := newRecordingSink()
	c := checkpoint.New(checkpoint.Config{}, 0)
	f, err := fanout.New(context.Background(), fanout.Config{Checkpoint: c, Targets: []fanout.Target{{Name: "s", Open: open(s)}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Pause("s"); err != nil {
		t.Fatal(err)
	}
	wait := runFanout(t, context.Background(), f)
	feed(c, f, 100, 3, 4)
	f.Stop()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := len(s.events()); got != 0 {
		t.Errorf("a paused sink was handed %d events at the stop", got)
	}
	if txs, ev := c.Unconfirmed(); txs != 3 || ev != 12 {
		t.Errorf("Unconfirmed = %d transactions, %d events; want 3 and 12", txs, ev)
	}
}

// State names a failing sink's last error and since when; an acknowledgement
// clears it.
func TestStateReportsTheLastFailure(t *testing.T) {
	t.Parallel()
	s := &fakeSink{}
	gate := make(chan struct{})
	s.publish = func(_ context.Context, evs []*event.Event) error {
		evs = slices.Clone(evs) // the slice is not the sink's to keep
		go func() {
			for i := range 3 {
				s.opts.Observer.Retried("s", fmt.Errorf("broker down (%d)", i))
			}
			<-gate
			for _, e := range evs {
				s.ack(e)
			}
		}()
		return nil
	}
	c := checkpoint.New(checkpoint.Config{}, 0)
	f, err := fanout.New(context.Background(), fanout.Config{Checkpoint: c, Targets: []fanout.Target{{Name: "s", Open: open(s)}}})
	if err != nil {
		t.Fatal(err)
	}
	if st := state(t, f, "s"); st.Err != nil || !st.Since.IsZero() {
		t.Fatalf("state of a new sink = %+v, want no error", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := runFanout(t, ctx, f)
	start := time.Now()
	_, end := feed(c, f, 100, 1, 3)
	waitUntil(t, "the failure to show", func() bool { return state(t, f, "s").Err != nil && state(t, f, "s").Err.Error() == "broker down (2)" })
	if st := state(t, f, "s"); st.Since.Before(start) || st.Pending != 3 {
		t.Errorf("state = %+v; want failing since after %v, 3 pending", st, start)
	}
	close(gate)
	waitUntil(t, "the acknowledgements", func() bool { return c.Safe() == end })
	if st := state(t, f, "s"); st.Err != nil || !st.Since.IsZero() {
		t.Errorf("state after the sink acknowledged again = %+v, want no error", st)
	}
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

// deadStore is a DeadLetterer that fails its first fails calls.
type deadStore struct {
	mu     sync.Mutex
	fails  int
	calls  int
	stored []string
}

func (d *deadStore) PutEvent(_ context.Context, sinkName string, e *event.Event, _ error, _ int, _ time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.calls++; d.calls <= d.fails {
		return errors.New("dead-letter table unreachable")
	}
	d.stored = append(d.stored, sinkName+":"+e.ID)
	return nil
}

// Under policy dead-letter an event a sink can never deliver is stored (the
// store retried until it takes it), counts as done for that sink, and the
// sink is reopened and sent the rest, in order.
func TestDeadLetterPolicy(t *testing.T) {
	t.Parallel()
	s := &fakeSink{}
	var mu sync.Mutex
	var got []string
	s.publish = func(_ context.Context, evs []*event.Event) error {
		for _, e := range evs {
			if e.ID == "bad" {
				return &sink.PermanentError{Sink: "s", EventID: e.ID, Err: errors.New("too large")}
			}
			mu.Lock()
			got = append(got, e.ID)
			mu.Unlock()
			s.ack(e)
		}
		return nil
	}
	var opens, retried int
	obs := retryCounter(func() { mu.Lock(); retried++; mu.Unlock() })
	dead := &deadStore{fails: 2}
	var lettered []string
	c := checkpoint.New(checkpoint.Config{}, 0)
	f, err := fanout.New(context.Background(), fanout.Config{Checkpoint: c, Dead: dead, Observer: obs,
		Hooks: fanout.Hooks{DeadLettered: func(name string, e *event.Event) { mu.Lock(); lettered = append(lettered, name+":"+e.ID); mu.Unlock() }},
		Targets: []fanout.Target{{Name: "s", Policy: sink.PolicyDeadLetter, Reopen: true,
			Backoff: retryFast, Open: func(_ context.Context, o sink.Options) (sink.Sink, error) {
				mu.Lock()
				opens++
				mu.Unlock()
				s.setOptions(o)
				return s, nil
			}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := runFanout(t, ctx, f)
	tx := c.Begin()
	var end uint64 = 108
	for _, id := range []string{"a", "bad", "b", "c"} {
		e := &event.Event{ID: id, CommitLSN: 100}
		f.Add(e, c.Add(tx, e, f.Route(e)))
	}
	c.Commit(tx, 100, end, time.Time{})
	f.Flush()
	waitUntil(t, "every event done", func() bool { return c.Safe() == end })
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	dead.mu.Lock()
	defer dead.mu.Unlock()
	if fmt.Sprint(got) != "[a b c]" || fmt.Sprint(dead.stored) != "[s:bad]" || fmt.Sprint(lettered) != "[s:bad]" {
		t.Errorf("delivered %v, stored %v, hook %v; want [a b c], [s:bad], [s:bad]", got, dead.stored, lettered)
	}
	if opens != 2 || dead.calls != 3 || retried < 2 {
		t.Errorf("opened %d times, store called %d times, %d retries observed; want 2, 3, at least 2", opens, dead.calls, retried)
	}
}

func state(t *testing.T, f *fanout.Fanout, name string) fanout.SinkState {
	t.Helper()
	for _, st := range f.State() {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no sink %s in State", name)
	return fanout.SinkState{}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type retryCounter func()

func (retryCounter) Acked(string, *event.Event)     {}
func (r retryCounter) Retried(string, error)        { r() }
func (retryCounter) Duplicate(string, *event.Event) {}
