package checkpoint_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
)

// testSinks holds the sinks newCP registered, by checkpoint.
var testSinks sync.Map

// testSinkCount is how many sinks newCP registers: s0, s1, ...
const testSinkCount = 4

// newCP returns a Checkpoint with testSinkCount sinks registered.
func newCP(cfg checkpoint.Config, start uint64) *checkpoint.Checkpoint {
	c := checkpoint.New(cfg, start)
	var sinks []*checkpoint.Sink
	for i := range testSinkCount {
		s, err := c.AddSink(fmt.Sprint("s", i))
		if err != nil {
			panic(err)
		}
		sinks = append(sinks, s)
	}
	testSinks.Store(c, sinks)
	return c
}

// sinkOf returns the sink newCP registered at i.
func sinkOf(c *checkpoint.Checkpoint, i int) *checkpoint.Sink {
	s, _ := testSinks.Load(c)
	return s.([]*checkpoint.Sink)[i]
}

// routes returns the set of the first n sinks newCP registered.
func routes(n int) uint64 { return 1<<n - 1 }

// ack acknowledges e as the sink newCP registered at i.
func ack(c *checkpoint.Checkpoint, e *event.Event, i int) { sinkOf(c, i).Ack(e) }

// txn is one test transaction: its commit and end LSN and its events.
type txn struct {
	c      *checkpoint.Checkpoint
	tx     *checkpoint.Tx
	commit uint64
	end    uint64
	events []*event.Event
}

// open begins a transaction and adds n events of size bytes, each routed to
// the first sinks sinks. It does not commit.
func open(c *checkpoint.Checkpoint, commit uint64, n, sinks, size int) *txn {
	t := &txn{c: c, tx: c.Begin(), commit: commit, end: commit + 8}
	for i := 0; i < n; i++ {
		e := &event.Event{Seq: i, Size: size, CommitLSN: commit}
		c.Add(t.tx, e, routes(sinks))
		t.events = append(t.events, e)
	}
	return t
}

func (t *txn) commitTx(c *checkpoint.Checkpoint) {
	c.Commit(t.tx, t.commit, t.end, time.Unix(int64(t.commit), 0))
}

// ackAll acknowledges every event of t by each of the first sinks sinks.
func (t *txn) ackAll(sinks int) {
	for _, e := range t.events {
		for i := range sinks {
			ack(t.c, e, i)
		}
	}
}

func TestSafeIsLongestCompletedPrefix(t *testing.T) {
	t.Parallel()
	const start = 1000
	c := newCP(checkpoint.Config{}, start)
	if got := c.Safe(); got != start {
		t.Fatalf("Safe = %d, want the start %d", got, start)
	}
	txs := []*txn{open(c, 1100, 2, 1, 10), nil, nil, nil}
	txs[0].commitTx(c)
	txs[1] = open(c, 1200, 1, 1, 10)
	txs[1].commitTx(c)
	txs[2] = open(c, 1300, 3, 1, 10)
	txs[2].commitTx(c)
	txs[3] = open(c, 1400, 1, 1, 10)
	txs[3].commitTx(c)

	// Complete out of order: 2, 3, 0, 1.
	for _, step := range []struct {
		complete int
		want     uint64
	}{
		{2, start},
		{3, start},
		{0, 1108},
		{1, 1408},
	} {
		txs[step.complete].ackAll(1)
		if got := c.Safe(); got != step.want {
			t.Errorf("after completing tx %d: Safe = %d, want %d", step.complete, got, step.want)
		}
	}
	if ev, b := c.InFlight(); ev != 0 || b != 0 {
		t.Errorf("InFlight = %d events %d bytes, want 0 0", ev, b)
	}
	if ts, ok := c.LastAcked(); !ok || !ts.Equal(time.Unix(1400, 0)) {
		t.Errorf("LastAcked = %v %v, want the newest completed commit time", ts, ok)
	}
}

func TestPartialAcksHoldSafe(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 0)
	a := open(c, 100, 3, 1, 1)
	a.commitTx(c)
	ack(c, a.events[0], 0)
	ack(c, a.events[2], 0)
	if got := c.Safe(); got != 0 {
		t.Errorf("Safe = %d with one event unacknowledged, want 0", got)
	}
	ack(c, a.events[1], 0)
	if got := c.Safe(); got != a.end {
		t.Errorf("Safe = %d, want %d", got, a.end)
	}
}

func TestEventRoutedToTwoSinksNeedsBothAcks(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 0)
	a := open(c, 100, 1, 2, 1)
	a.commitTx(c)
	ack(c, a.events[0], 0)
	if got := c.Safe(); got != 0 {
		t.Errorf("Safe = %d after one of two sinks acknowledged, want 0", got)
	}
	if ev, _ := c.InFlight(); ev != 1 {
		t.Errorf("InFlight events = %d after one of two acks, want 1", ev)
	}
	ack(c, a.events[0], 1)
	if got := c.Safe(); got != a.end {
		t.Errorf("Safe = %d after both acks, want %d", got, a.end)
	}
}

func TestEventRoutedNowhereIsDone(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 0)
	a := open(c, 100, 2, 0, 50)
	a.commitTx(c)
	if got := c.Safe(); got != a.end {
		t.Errorf("Safe = %d for a transaction whose events go nowhere, want %d", got, a.end)
	}
	if ev, b := c.InFlight(); ev != 0 || b != 0 {
		t.Errorf("InFlight = %d %d, want 0 0", ev, b)
	}
}

func TestAckedBeforeCommitCompletesAtCommit(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 0)
	a := open(c, 100, 2, 1, 1)
	a.ackAll(1)
	if got := c.Safe(); got != 0 {
		t.Errorf("Safe = %d before Commit, want 0: more events may follow", got)
	}
	select {
	case <-c.Progress():
		t.Error("Progress signalled before Commit")
	default:
	}
	a.commitTx(c)
	select {
	case <-c.Progress():
	default:
		t.Error("Progress not signalled when Commit completed the transaction")
	}
	if got := c.Safe(); got != a.end {
		t.Errorf("Safe = %d after Commit, want %d", got, a.end)
	}
}

func TestEmptyTransactions(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 0)
	a := open(c, 100, 1, 1, 1)
	a.commitTx(c)
	empty := open(c, 200, 0, 1, 1)
	empty.commitTx(c)
	if got := c.Safe(); got != 0 {
		t.Errorf("Safe = %d: an empty transaction passed an unfinished one", got)
	}
	a.ackAll(1)
	if got := c.Safe(); got != empty.end {
		t.Errorf("Safe = %d, want the empty transaction's end %d", got, empty.end)
	}
	b := open(c, 300, 0, 1, 1)
	b.commitTx(c)
	if got := c.Safe(); got != b.end {
		t.Errorf("Safe = %d, want %d", got, b.end)
	}
}

func TestKeepalive(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 100)

	// Idle: the safe position follows the WAL end.
	c.Keepalive(500)
	if got := c.Safe(); got != 500 {
		t.Fatalf("idle: Safe = %d after keepalive 500, want 500", got)
	}
	// An older keepalive does not move it back.
	c.Keepalive(400)
	if got := c.Safe(); got != 500 {
		t.Errorf("Safe = %d after an older keepalive, want 500", got)
	}

	// In flight: a keepalive waits for the transactions before it.
	a := open(c, 600, 1, 1, 1)
	a.commitTx(c)
	c.Keepalive(900)
	if got := c.Safe(); got != 500 {
		t.Errorf("Safe = %d with a transaction in flight, want 500", got)
	}
	a.ackAll(1)
	if got := c.Safe(); got != 900 {
		t.Errorf("Safe = %d after the transaction completed, want max(end %d, keepalive 900)", got, a.end)
	}

	// A keepalive older than the transaction's end: the end wins.
	b := open(c, 1000, 1, 1, 1)
	b.commitTx(c)
	c.Keepalive(950)
	b.ackAll(1)
	if got := c.Safe(); got != b.end {
		t.Errorf("Safe = %d, want the end %d", got, b.end)
	}

	// A keepalive that arrives while two transactions are in flight follows
	// the later one: completing the first is not enough.
	x := open(c, 2000, 1, 1, 1)
	x.commitTx(c)
	y := open(c, 2100, 1, 1, 1)
	y.commitTx(c)
	c.Keepalive(3000)
	x.ackAll(1)
	if got := c.Safe(); got != x.end {
		t.Errorf("Safe = %d after the first of two, want %d", got, x.end)
	}
	y.ackAll(1)
	if got := c.Safe(); got != 3000 {
		t.Errorf("Safe = %d after both, want the keepalive 3000", got)
	}
}

// TestKeepaliveDuringOpenTransaction: a keepalive received while a
// transaction is still being received is held until that one completes.
func TestKeepaliveDuringOpenTransaction(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 100)
	a := open(c, 600, 1, 1, 1)
	c.Keepalive(550)
	a.ackAll(1)
	if got := c.Safe(); got != 100 {
		t.Errorf("Safe = %d while the transaction is open, want 100", got)
	}
	a.commitTx(c)
	if got := c.Safe(); got != a.end {
		t.Errorf("Safe = %d, want %d", got, a.end)
	}
}

func TestSafeNeverGoesBackwards(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 10_000)
	// A transaction that ends before the start (replayed after a restart).
	a := open(c, 5000, 1, 1, 1)
	a.commitTx(c)
	a.ackAll(1)
	if got := c.Safe(); got != 10_000 {
		t.Errorf("Safe = %d, went back from 10000", got)
	}
	c.Keepalive(9000)
	if got := c.Safe(); got != 10_000 {
		t.Errorf("Safe = %d after an old keepalive, want 10000", got)
	}
}

func TestDropOpen(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 0)
	a := open(c, 100, 1, 1, 10)
	a.commitTx(c)
	a.ackAll(1)
	b := open(c, 200, 2, 1, 10) // cut mid-transaction
	c.DropOpen()
	if got := c.Safe(); got != a.end {
		t.Errorf("Safe = %d, want %d", got, a.end)
	}
	if _, err := c.Drain(context.Background()); err != nil {
		t.Errorf("Drain after DropOpen: %v, want nothing in flight", err)
	}
	// Its events, already with the sinks, may still be acknowledged: that
	// frees the window and moves nothing.
	b.ackAll(1)
	if ev, by := c.InFlight(); ev != 0 || by != 0 {
		t.Errorf("InFlight = %d %d, want 0 0", ev, by)
	}
	if got := c.Safe(); got != a.end {
		t.Errorf("Safe = %d after acks of a dropped transaction, want %d", got, a.end)
	}
	// The server sends it again.
	b2 := open(c, 200, 2, 1, 10)
	b2.commitTx(c)
	b2.ackAll(1)
	if got := c.Safe(); got != b2.end {
		t.Errorf("Safe = %d after the resent transaction, want %d", got, b2.end)
	}

	// DropOpen with only committed transactions drops nothing.
	d := open(c, 300, 1, 1, 1)
	d.commitTx(c)
	c.DropOpen()
	d.ackAll(1)
	if got := c.Safe(); got != d.end {
		t.Errorf("DropOpen dropped a committed transaction: Safe = %d, want %d", got, d.end)
	}
}

func TestWindowEvents(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{MaxEvents: 3, MaxBytes: 1 << 20}, 0)
	a := open(c, 100, 2, 1, 1)
	if ch := c.Wait(); ch != nil {
		t.Fatal("Wait returned a channel with 2 of 3 events in flight")
	}
	e := &event.Event{Size: 1}
	c.Add(a.tx, e, 1)
	ch := c.Wait()
	if ch == nil {
		t.Fatal("Wait returned nil with the window full (3 of 3 events)")
	}
	select {
	case <-ch:
		t.Fatal("space signalled before any ack")
	default:
	}
	ack(c, e, 0)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("space not signalled after an ack freed a slot")
	}
	if c.Wait() != nil {
		t.Error("Wait returned a channel after space was freed")
	}
}

func TestWindowBytes(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{MaxEvents: 100, MaxBytes: 100}, 0)
	a := open(c, 100, 1, 1, 60)
	if c.Wait() != nil {
		t.Fatal("Wait returned a channel with 60 of 100 bytes")
	}
	big := &event.Event{Size: 60}
	c.Add(a.tx, big, 1)
	ch := c.Wait()
	if ch == nil {
		t.Fatal("Wait returned nil with 120 of 100 bytes")
	}
	ack(c, big, 0)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("space not signalled after bytes were freed")
	}
	if ev, b := c.InFlight(); ev != 1 || b != 60 {
		t.Errorf("InFlight = %d %d, want 1 60", ev, b)
	}

	// One event larger than the whole window still passes, alone.
	ack(c, a.events[0], 0)
	if c.Wait() != nil {
		t.Fatal("Wait returned a channel with nothing in flight")
	}
	huge := &event.Event{Size: 1000}
	c.Add(a.tx, huge, 1)
	if c.Wait() == nil {
		t.Error("Wait returned nil with 1000 of 100 bytes in flight")
	}
}

func TestWindowDefaults(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 0)
	a := c.Begin()
	for i := 0; i < checkpoint.DefaultMaxEvents-1; i++ {
		c.Add(a, &event.Event{Size: 1}, 1)
	}
	if c.Wait() != nil {
		t.Fatalf("full below the default %d events", checkpoint.DefaultMaxEvents)
	}
	c.Add(a, &event.Event{Size: 1}, 1)
	if c.Wait() == nil {
		t.Fatalf("not full at the default %d events", checkpoint.DefaultMaxEvents)
	}

	c = newCP(checkpoint.Config{}, 0)
	c.Add(c.Begin(), &event.Event{Size: checkpoint.DefaultMaxBytes - 1}, 1)
	if c.Wait() != nil {
		t.Fatal("full below the default byte bound")
	}
	c.Add(c.Begin(), &event.Event{Size: 1}, 1)
	if c.Wait() == nil {
		t.Fatal("not full at the default byte bound")
	}
}

func TestDrain(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 0)
	if got, err := c.Drain(context.Background()); err != nil || got != 0 {
		t.Fatalf("Drain with nothing in flight = %d, %v", got, err)
	}
	a := open(c, 100, 3, 2, 1)
	a.commitTx(c)
	done := make(chan struct{})
	var safe uint64
	var err error
	go func() {
		defer close(done)
		safe, err = c.Drain(context.Background())
	}()
	select {
	case <-done:
		t.Fatal("Drain returned with events in flight")
	case <-time.After(100 * time.Millisecond):
	}
	a.ackAll(2)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return after every event was acknowledged")
	}
	if err != nil || safe != a.end {
		t.Errorf("Drain = %d, %v; want %d, nil", safe, err, a.end)
	}
}

func TestDrainHonoursContext(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 42)
	a := open(c, 100, 1, 1, 1)
	a.commitTx(c)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	safe, err := c.Drain(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || safe != 42 {
		t.Errorf("Drain = %d, %v; want 42, context.DeadlineExceeded", safe, err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := c.Drain(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Drain with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestConcurrentAcks acknowledges events of many transactions from many
// goroutines, in random order, while another goroutine polls Safe: Safe never
// goes backwards, never passes an incomplete transaction, and ends at the
// last end.
func TestConcurrentAcks(t *testing.T) {
	t.Parallel()
	const (
		numTx   = 200
		perTx   = 10
		sinks   = 2
		workers = 8
	)
	c := newCP(checkpoint.Config{MaxEvents: numTx * perTx, MaxBytes: 1 << 30}, 0)
	txs := make([]*txn, numTx)
	type ackOf struct {
		e    *event.Event
		sink int
	}
	var acks []ackOf
	for i := range txs {
		txs[i] = open(c, uint64(i+1)*100, perTx, sinks, 10)
		txs[i].commitTx(c)
		for _, e := range txs[i].events {
			for s := range sinks {
				acks = append(acks, ackOf{e, s})
			}
		}
	}
	rand.Shuffle(len(acks), func(i, j int) { acks[i], acks[j] = acks[j], acks[i] })

	// acked[e] counts acks; a transaction is complete when every event has
	// all of them. The poller checks Safe against what was acked before it
	// read Safe.
	var mu sync.Mutex
	acked := map[*event.Event]int{}
	complete := func(upTo uint64) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, tx := range txs {
			if tx.end > upTo {
				return true
			}
			for _, e := range tx.events {
				if acked[e] != sinks {
					return false
				}
			}
		}
		return true
	}

	stop := make(chan struct{})
	pollerDone := make(chan struct{})
	go func() {
		defer close(pollerDone)
		var last uint64
		for {
			s := c.Safe()
			if s < last {
				t.Errorf("Safe went backwards: %d after %d", s, last)
			}
			if !complete(s) {
				t.Errorf("Safe = %d passes a transaction with unacknowledged events", s)
			}
			last = s
			select {
			case <-stop:
				return
			default:
			}
		}
	}()

	var wg sync.WaitGroup
	chunk := (len(acks) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		part := acks[min(w*chunk, len(acks)):min((w+1)*chunk, len(acks))]
		wg.Go(func() {
			for _, a := range part {
				// Record first: an ack counted here may not be seen by
				// Safe yet, which only makes the check stricter.
				mu.Lock()
				acked[a.e]++
				mu.Unlock()
				ack(c, a.e, a.sink)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-pollerDone

	if got, err := c.Drain(context.Background()); err != nil || got != txs[numTx-1].end {
		t.Errorf("Drain = %d, %v; want %d", got, err, txs[numTx-1].end)
	}
	if ev, b := c.InFlight(); ev != 0 || b != 0 {
		t.Errorf("InFlight = %d %d, want 0 0", ev, b)
	}
}

// TestWaitSignalRace: a reader that waits on a full window is always woken
// by the acks of other goroutines (no lost wake-up).
func TestWaitSignalRace(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{MaxEvents: 4, MaxBytes: 1 << 20}, 0)
	const total = 2000
	queue := make(chan *event.Event, total)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for e := range queue {
				ack(c, e, 0)
			}
		})
	}
	tx := c.Begin()
	for i := 0; i < total; i++ {
		for {
			ch := c.Wait()
			if ch == nil {
				break
			}
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
				ev, _ := c.InFlight()
				t.Fatalf("event %d: reader not woken with %d in flight", i, ev)
			}
		}
		e := &event.Event{Size: 1}
		c.Add(tx, e, 1)
		queue <- e
	}
	close(queue)
	wg.Wait()
	c.Commit(tx, 1, 2, time.Time{})
	if got := c.Safe(); got != 2 {
		t.Errorf("Safe = %d, want 2", got)
	}
}

// The bound (the WAL position where the outbox's publication membership was
// last verified) caps Safe whatever moved it: a keepalive's WAL end or a
// completed transaction; Unbounded shows what the slot could reach; the cap
// only rises and Safe never goes backwards.
func TestBoundCapsSafe(t *testing.T) {
	t.Parallel()
	c := newCP(checkpoint.Config{}, 100)
	c.Bound(150)
	c.Keepalive(500)
	if got, want := c.Safe(), uint64(150); got != want {
		t.Fatalf("Safe after a keepalive past the bound = %d, want %d", got, want)
	}
	if got := c.Unbounded(); got != 500 {
		t.Fatalf("Unbounded = %d, want the keepalive's 500", got)
	}
	tx := open(c, 600, 1, 1, 10)
	tx.commitTx(c)
	tx.ackAll(1)
	c.Bound(400)
	if got := c.Safe(); got != 400 {
		t.Fatalf("Safe with a completed transaction ending at 608 = %d, want the bound 400", got)
	}
	c.Bound(300) // lower: ignored
	if got := c.Safe(); got != 400 {
		t.Fatalf("Safe after a lower Bound = %d, want 400", got)
	}
	c.Bound(10_000)
	if got := c.Safe(); got != 608 {
		t.Fatalf("Safe with the bound past everything = %d, want the transaction's end 608", got)
	}
	// A server shutting down lifts the cap until the next Bound.
	c2 := newCP(checkpoint.Config{}, 100)
	c2.Bound(150)
	c2.Keepalive(900)
	c2.Lift()
	if got := c2.Safe(); got != 900 {
		t.Fatalf("Safe after Lift = %d, want the keepalive's 900", got)
	}
	c2.Keepalive(1200)
	c2.Bound(1000)
	if got := c2.Safe(); got != 1000 {
		t.Fatalf("Safe after Lift and Bound(1000) = %d, want 1000", got)
	}
}
