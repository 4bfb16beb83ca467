package sinktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Destination is one empty place a sink writes to (a topic, a stream, a
// file), made for one subtest of Run.
type Destination struct {
	// Open returns a new sink that writes to the destination, built with
	// opts. It may be called more than once: the suite closes one sink
	// and opens another to resend what the first did not acknowledge. The
	// suite closes every sink it opens.
	Open func(t *testing.T, opts sink.Options) sink.Sink
	// Read returns the ids of the events the destination holds, in the
	// order a consumer reads them (per partition key, the order they were
	// stored in). It waits until there are at least n, for destinations
	// whose reads lag, and fails the test when there are not within a
	// reasonable time.
	Read func(t *testing.T, n int) []string
	// Dedup says the destination drops a resend of an event it holds, so
	// that no event is ever stored twice. Without it an event that was
	// not acknowledged may be stored again when it is resent.
	Dedup bool
	// Poison, when not nil, changes e (a copy the suite made) so that the
	// sink can never deliver it. The PermanentFailure test is skipped
	// without it.
	Poison func(e *event.Event)
	// Hold, when not nil, makes the destination stop confirming what it
	// receives until the returned function is called (a paused server, a
	// proxy holding replies). Without it CloseInFlight closes right after
	// a Publish and checks only what it can.
	Hold func(t *testing.T) (release func())
}

// Run is the conformance suite a sink passes, like testing/fstest.TestFS
// for file systems. newDest is called once per subtest for a fresh, empty
// destination. The subtests check:
//
//   - OrderAndAcks: every event is acknowledged exactly once, the
//     acknowledgements of each partition key come in Publish order, and the
//     destination holds every event once, each key's in Publish order;
//   - PermanentFailure: an event the sink can never deliver surfaces, from
//     Publish or Flush, as a *sink.PermanentError naming the sink and the
//     event (and sink.IsPermanent), is not acknowledged, and the events of
//     its key before it are; a new sink then delivers every event the
//     first did not acknowledge (ResendAfterReopen);
//   - CloseInFlight: Close with events in flight returns, nothing is
//     acknowledged after it returned, Publish and Flush then return
//     sink.ErrClosed, and a new sink delivers what was not acknowledged.
//
// After a resend every event is acknowledged exactly once over both sinks,
// and the destination holds every event, each key's first copies in
// Publish order; a second copy only of an event that was not acknowledged,
// and none with Dedup.
func Run(t *testing.T, newDest func(t *testing.T) Destination) {
	t.Run("OrderAndAcks", func(t *testing.T) { testOrderAndAcks(t, newDest(t)) })
	t.Run("PermanentFailure", func(t *testing.T) {
		d := newDest(t)
		if d.Poison == nil {
			t.Skip("the destination has no event it cannot take")
		}
		testPermanentFailure(t, d)
	})
	t.Run("CloseInFlight", func(t *testing.T) { testCloseInFlight(t, newDest(t)) })
}

const sinkName = "conformance"

func open(t *testing.T, d Destination, rec *Recorder) sink.Sink {
	t.Helper()
	s := d.Open(t, Options(sinkName, rec, Logger()))
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testEvents(n, keys int) []*event.Event {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return Events{Prefix: "ct" + hex.EncodeToString(b[:]), Keys: Keys(keys)}.Make(0, n)
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// publish hands evs to s in slices of 1 to 13 events, as the pipeline
// might, and returns the first error with the number of events handed over
// before the call that failed.
func publish(ctx context.Context, s sink.Sink, evs []*event.Event) (int, error) {
	for i := 0; i < len(evs); {
		n := min(1+i%13, len(evs)-i)
		if err := s.Publish(ctx, evs[i:i+n]); err != nil {
			return i, err
		}
		i += n
	}
	return len(evs), nil
}

func testOrderAndAcks(t *testing.T, d Destination) {
	rec := NewRecorder()
	s := open(t, d, rec)
	evs := testEvents(300, 7)
	if _, err := publish(timeout(t, time.Minute), s, evs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := s.Flush(timeout(t, time.Minute)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	rec.CheckExactly(t, evs)
	checkAckOrder(t, rec, evs)
	checkStored(t, d.Read(t, len(evs)), evs, nil)
	if err := s.Flush(timeout(t, 5*time.Second)); err != nil {
		t.Fatalf("Flush with nothing in flight: %v", err)
	}
}

func testPermanentFailure(t *testing.T, d Destination) {
	rec := NewRecorder()
	s := open(t, d, rec)
	evs := testEvents(60, 3)
	bad := evs[25]
	poisoned := Copy([]*event.Event{bad})[0]
	d.Poison(poisoned)
	sent := append([]*event.Event(nil), evs...)
	sent[25] = poisoned

	ctx := timeout(t, time.Minute)
	var err error
	for i := 0; i < len(sent) && err == nil; i += 10 {
		err = s.Publish(ctx, sent[i:min(i+10, len(sent))])
	}
	if err == nil {
		err = s.Flush(ctx)
	}
	var pe *sink.PermanentError
	if !errors.As(err, &pe) || pe.EventID != bad.ID || pe.Sink != sinkName || !sink.IsPermanent(err) {
		t.Fatalf("Publish/Flush = %v, want a *sink.PermanentError of sink %s for event %s", err, sinkName, bad.ID)
	}
	// The events of its key before it are acknowledged (those of other keys
	// may or may not be); it is not.
	var before []*event.Event
	for _, e := range evs[:25] {
		if e.AggregateID == bad.AggregateID {
			before = append(before, e)
		}
	}
	waitFor(t, 30*time.Second, "the events of its key before the failed one acknowledged", func() bool {
		for _, e := range before {
			if rec.AckCount(e) == 0 {
				return false
			}
		}
		return true
	})
	if n := rec.AckCount(poisoned); n != 0 {
		t.Fatalf("the event that cannot be delivered was acknowledged %d times", n)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	resendAfterReopen(t, d, rec, evs)
}

func testCloseInFlight(t *testing.T, d Destination) {
	rec := NewRecorder()
	s := open(t, d, rec)
	evs := testEvents(200, 5)
	var release func()
	if d.Hold != nil {
		release = d.Hold(t)
	}
	if _, err := publish(timeout(t, time.Minute), s, evs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close with events in flight did not return")
	}
	acked := rec.Acks()
	if release != nil {
		if acked != 0 {
			t.Fatalf("%d events acknowledged while the destination held them", acked)
		}
		release()
	}
	time.Sleep(300 * time.Millisecond)
	if n := rec.Acks(); n != acked {
		t.Fatalf("%d events acknowledged after Close returned", n-acked)
	}
	if err := s.Publish(timeout(t, 5*time.Second), evs[:1]); !errors.Is(err, sink.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want sink.ErrClosed", err)
	}
	if err := s.Flush(timeout(t, 5*time.Second)); !errors.Is(err, sink.ErrClosed) && err != nil {
		t.Fatalf("Flush after Close = %v, want sink.ErrClosed (or nil with nothing in flight)", err)
	}
	t.Logf("%d of %d events acknowledged before Close", acked, len(evs))
	resendAfterReopen(t, d, rec, evs)
}

// resendAfterReopen opens a new sink, hands it every event of evs that rec
// did not see acknowledged, in order, and checks that then every event was
// acknowledged exactly once and is stored.
func resendAfterReopen(t *testing.T, d Destination, rec *Recorder, evs []*event.Event) {
	t.Helper()
	var resend []*event.Event
	unacked := map[string]bool{}
	for _, e := range evs {
		if rec.AckCount(e) == 0 {
			resend = append(resend, e)
			unacked[e.ID] = true
		}
	}
	s := open(t, d, rec)
	ctx := timeout(t, time.Minute)
	if _, err := publish(ctx, s, resend); err != nil {
		t.Fatalf("Publish to the reopened sink: %v", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush of the reopened sink: %v", err)
	}
	rec.CheckEach(t, evs)
	mayDup := unacked
	if d.Dedup {
		mayDup = nil
	}
	checkStored(t, d.Read(t, len(evs)), evs, mayDup)
}

// checkAckOrder fails unless the acknowledgements of each partition key came
// in the order of evs.
func checkAckOrder(t *testing.T, rec *Recorder, evs []*event.Event) {
	t.Helper()
	pos := make(map[*event.Event]int, len(evs))
	for i, e := range evs {
		pos[e] = i
	}
	last := map[string]int{}
	for _, e := range rec.Order() {
		p, ok := pos[e]
		if !ok {
			continue
		}
		if l, seen := last[e.PartitionKey()]; seen && p < l {
			t.Fatalf("key %s: event %s acknowledged after %s", e.PartitionKey(), e.ID, evs[l].ID)
		}
		last[e.PartitionKey()] = p
	}
}

// checkStored fails unless stored holds every event of evs, none other, a
// second copy only of the ids in mayDup, and each key's first copies in the
// order of evs.
func checkStored(t *testing.T, stored []string, evs []*event.Event, mayDup map[string]bool) {
	t.Helper()
	pos := make(map[string]int, len(evs))
	for i, e := range evs {
		pos[e.ID] = i
	}
	seen := map[string]int{}
	last := map[string]int{}
	for _, id := range stored {
		p, ok := pos[id]
		if !ok {
			t.Fatalf("the destination holds an unknown event %q", id)
		}
		seen[id]++
		if seen[id] > 1 {
			if !mayDup[id] {
				t.Fatalf("event %s stored %d times", id, seen[id])
			}
			continue
		}
		key := evs[p].PartitionKey()
		if l, ok := last[key]; ok && p < l {
			t.Fatalf("key %s: event %s stored after %s (stored: %s)", key, id, evs[l].ID, strings.Join(stored, " "))
		}
		last[key] = p
	}
	for _, e := range evs {
		if seen[e.ID] == 0 {
			t.Fatalf("event %s is not stored (%d of %d are)", e.ID, len(seen), len(evs))
		}
	}
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
