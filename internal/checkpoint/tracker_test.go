package checkpoint_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
)

// An event is done (its window space free, its transaction able to
// complete) once every sink it was routed to acknowledged it, and only then,
// for any number of sinks; an event routed nowhere is done at once.
func TestEventDoneAfterEveryRoutedSink(t *testing.T) {
	t.Parallel()
	for _, sinks := range []int{0, 1, 2, 4} {
		c := newCP(checkpoint.Config{}, 0)
		a := open(c, 100, 1, sinks, 10)
		a.commitTx(c)
		e := a.events[0]
		for i := range sinks {
			if ev, _ := c.InFlight(); ev != 1 {
				t.Fatalf("%d sinks: %d events in flight after %d acks, want 1", sinks, ev, i)
			}
			if got := c.Safe(); got != 0 {
				t.Fatalf("%d sinks: Safe = %d after %d acks", sinks, got, i)
			}
			ack(c, e, i)
		}
		if ev, _ := c.InFlight(); ev != 0 {
			t.Errorf("%d sinks: %d events in flight after every ack, want 0", sinks, ev)
		}
		if got := c.Safe(); got != a.end {
			t.Errorf("%d sinks: Safe = %d after every ack, want %d", sinks, got, a.end)
		}
	}
}

// A second acknowledgement from the same sink, or one from a sink the event
// was not routed to, is ignored: it cannot stand in for a sink that has not
// acknowledged, so it cannot release the slot early.
func TestDuplicateAcksAreIgnored(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 0)
	a := open(c, 100, 1, 2, 10) // routed to s0 and s1
	a.commitTx(c)
	e := a.events[0]
	s0, s1, s2 := sinkOf(c, 0), sinkOf(c, 1), sinkOf(c, 2)
	if !s0.Owes(e) || !s1.Owes(e) || s2.Owes(e) {
		t.Fatalf("Owes = %v %v %v, want true true false", s0.Owes(e), s1.Owes(e), s2.Owes(e))
	}
	if !s0.Ack(e) {
		t.Fatal("the first acknowledgement of s0 did not count")
	}
	if s0.Ack(e) || s0.Ack(e) {
		t.Error("a second acknowledgement of s0 counted")
	}
	if s2.Ack(e) {
		t.Error("an acknowledgement from s2, which the event was not routed to, counted")
	}
	if got := c.Safe(); got != 0 {
		t.Fatalf("Safe = %d with s1 yet to acknowledge", got)
	}
	if ev, _ := c.InFlight(); ev != 1 {
		t.Fatalf("%d events in flight, want 1", ev)
	}
	if !s1.Ack(e) || s1.Owes(e) {
		t.Fatal("s1's acknowledgement did not count")
	}
	if got := c.Safe(); got != a.end {
		t.Errorf("Safe = %d, want %d", got, a.end)
	}
	if ev, b := c.InFlight(); ev != 0 || b != 0 {
		t.Errorf("InFlight = %d %d after the last ack and duplicates, want 0 0", ev, b)
	}
}

// Per-sink progress: each sink's position follows its own acknowledgements,
// past transactions another sink still owes, and stops at the first
// transaction it owes anything of or that is still open. It never goes back.
func TestSinkProgress(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 0)
	s0, s1 := sinkOf(c, 0), sinkOf(c, 1)
	if p := s0.Progress(); p != 0 {
		t.Fatalf("Progress before anything = %d, want 0", p)
	}
	both := open(c, 100, 2, 2, 10) // s0 and s1
	both.commitTx(c)
	only0 := open(c, 200, 1, 1, 10) // s0 only
	only0.commitTx(c)
	both2 := open(c, 300, 1, 2, 10)
	both2.commitTx(c)
	open4 := open(c, 400, 1, 2, 10) // still being received

	// s1 acknowledges the last committed transaction first: out of order.
	ack(c, both2.events[0], 1)
	if p := s1.Progress(); p != 0 {
		t.Errorf("s1 Progress = %d with the first transaction unacknowledged, want 0", p)
	}
	// s1 acknowledges the first one: it owes nothing of 100, 200 (not
	// routed to it) or 300, and 400 is open.
	both.ackAll(2) // s0 and s1
	if p := s1.Progress(); p != 301 {
		t.Errorf("s1 Progress = %d, want 301: everything below 400 acknowledged, 400 open", p)
	}
	if p := s0.Progress(); p != 101 {
		t.Errorf("s0 Progress = %d, want 101: it owes 200", p)
	}
	if got := c.Safe(); got != both.end {
		t.Errorf("Safe = %d, want %d: the slot waits for s0", got, both.end)
	}
	ack(c, only0.events[0], 0)
	ack(c, both2.events[0], 0)
	if p := s0.Progress(); p != 301 {
		t.Errorf("s0 Progress = %d, want 301", p)
	}
	if got := c.Positions(); got["s0"] != 301 || got["s1"] != 301 || len(got) != testSinkCount {
		t.Errorf("Positions = %v, want s0 and s1 at 301", got)
	}
	// The open transaction commits and is acknowledged: everything is
	// done, and the positions pass it.
	open4.commitTx(c)
	open4.ackAll(2)
	if got := c.Safe(); got != open4.end {
		t.Errorf("Safe = %d, want %d", got, open4.end)
	}
	if p := s0.Progress(); p != 401 {
		t.Errorf("s0 Progress after everything = %d, want 401", p)
	}
	// A sink no event was routed to still follows the committed prefix.
	if p := sinkOf(c, 3).Progress(); p != 401 {
		t.Errorf("Progress of a sink nothing was routed to = %d, want 401", p)
	}
	if p := s1.Pending(); p != 0 {
		t.Errorf("s1 Pending = %d, want 0", p)
	}
}

// Pending counts the events routed to a sink that it has not acknowledged,
// over every transaction in flight; of the one being received, in steps of
// 256 events.
func TestSinkPending(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 0)
	a := open(c, 100, 3, 2, 10)
	a.commitTx(c)
	b := open(c, 200, 2, 1, 10)
	if p0, p1 := sinkOf(c, 0).Pending(), sinkOf(c, 1).Pending(); p0 < 3 || p0 > 5 || p1 != 3 {
		t.Fatalf("Pending with a transaction open = %d %d, want 3 to 5 and 3", p0, p1)
	}
	b.commitTx(c)
	if p0, p1 := sinkOf(c, 0).Pending(), sinkOf(c, 1).Pending(); p0 != 5 || p1 != 3 {
		t.Fatalf("Pending = %d %d, want 5 3", p0, p1)
	}
	a.ackAll(1)
	ack(c, b.events[0], 0)
	if p0, p1 := sinkOf(c, 0).Pending(), sinkOf(c, 1).Pending(); p0 != 1 || p1 != 3 {
		t.Errorf("Pending = %d %d, want 1 3", p0, p1)
	}
	// A long transaction being received shows in steps of 256.
	big := open(c, 300, 600, 1, 1)
	if p0 := sinkOf(c, 0).Pending(); p0 < 1+512 || p0 > 1+600 {
		t.Errorf("Pending with 600 events of an open transaction = %d, want 513 to 601", p0)
	}
	big.commitTx(c)
	if p0 := sinkOf(c, 0).Pending(); p0 != 601 {
		t.Errorf("Pending = %d, want 601", p0)
	}
}

// After a restart, Restore gives each sink the position it had reached: an
// event committed below it is not routed to that sink again (routed to no
// sink at all, it is done at once), and the sink's progress starts there.
func TestRestoreSkipsWhatASinkHad(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 0)
	c.Restore(map[string]uint64{"s0": 250, "gone": 900})
	if p := sinkOf(c, 0).Progress(); p != 250 {
		t.Fatalf("s0 Progress after Restore = %d, want 250", p)
	}
	tx := c.Begin()
	old := &event.Event{CommitLSN: 200, Size: 10}
	if got := c.Add(tx, old, routes(2)); got != sinkOf(c, 1).Bit() {
		t.Errorf("Add of an event below s0's position returned %b, want only s1 (%b)", got, sinkOf(c, 1).Bit())
	}
	if sinkOf(c, 0).Owes(old) {
		t.Error("s0 owes an event it had before the restart")
	}
	older := &event.Event{CommitLSN: 200, Size: 10}
	if got := c.Add(tx, older, sinkOf(c, 0).Bit()); got != 0 {
		t.Errorf("Add of an event only s0 had returned %b, want none", got)
	}
	if ev, _ := c.InFlight(); ev != 1 {
		t.Errorf("%d events in flight, want 1: the one no sink owes is done", ev)
	}
	c.Commit(tx, 200, 208, time.Time{})
	tx2 := c.Begin()
	newer := &event.Event{CommitLSN: 300, Size: 10}
	if got := c.Add(tx2, newer, routes(2)); got != routes(2) {
		t.Errorf("Add of an event past s0's position returned %b, want both", got)
	}
	c.Commit(tx2, 300, 308, time.Time{})
	ack(c, old, 1)
	ack(c, newer, 1)
	if got := c.Safe(); got != 208 {
		t.Errorf("Safe = %d, want 208 (s0 owes 300)", got)
	}
	if p := sinkOf(c, 0).Progress(); p != 250 {
		t.Errorf("s0 Progress = %d, want still 250", p)
	}
	ack(c, newer, 0)
	if p := sinkOf(c, 0).Progress(); p != 301 {
		t.Errorf("s0 Progress = %d, want 301", p)
	}
}

func TestAddSinkErrors(t *testing.T) {
	t.Parallel()
	c := checkpoint.New(checkpoint.Config{}, 0)
	if _, err := c.AddSink("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddSink("a"); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("AddSink of a second a = %v, want an error naming it", err)
	}
	for i := 1; i < checkpoint.MaxSinks; i++ {
		if _, err := c.AddSink(fmt.Sprint(i)); err != nil {
			t.Fatalf("sink %d: %v", i, err)
		}
	}
	if _, err := c.AddSink("one too many"); !errors.Is(err, checkpoint.ErrTooManySinks) {
		t.Errorf("AddSink past %d = %v, want ErrTooManySinks", checkpoint.MaxSinks, err)
	}
	c = checkpoint.New(checkpoint.Config{}, 0)
	c.Begin()
	if _, err := c.AddSink("late"); err == nil || !strings.Contains(err.Error(), "late") {
		t.Errorf("AddSink after Begin = %v, want an error", err)
	}
}

// Many sinks acknowledging one event at once: it is done exactly once.
func TestConcurrentAcksOfOneEvent(t *testing.T) {
	t.Parallel()
	const sinks = checkpoint.MaxSinks
	c := checkpoint.New(checkpoint.Config{MaxEvents: 1 << 20}, 0)
	var all []*checkpoint.Sink
	for i := range sinks {
		s, err := c.AddSink(fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, s)
	}
	var everyone uint64
	for _, s := range all {
		everyone |= s.Bit()
	}
	for n := range 200 {
		tx := c.Begin()
		e := &event.Event{Size: 1}
		c.Add(tx, e, everyone)
		c.Commit(tx, uint64(n+1)*100, uint64(n+1)*100+8, time.Time{})
		var wg sync.WaitGroup
		counted := make(chan bool, 2*sinks)
		for _, s := range all {
			wg.Go(func() { counted <- s.Ack(e) })
			wg.Go(func() { counted <- s.Ack(e) }) // and a duplicate
		}
		wg.Wait()
		close(counted)
		n := 0
		for ok := range counted {
			if ok {
				n++
			}
		}
		if n != sinks {
			t.Fatalf("%d acknowledgements counted, want %d (one per sink)", n, sinks)
		}
	}
	if ev, b := c.InFlight(); ev != 0 || b != 0 {
		t.Errorf("InFlight = %d %d, want 0 0", ev, b)
	}
	if got := c.Safe(); got != 200*100+8 {
		t.Errorf("Safe = %d, want %d", got, 200*100+8)
	}
}
