package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/ackstate"
)

// Default window bounds.
const (
	DefaultMaxEvents = 2048
	DefaultMaxBytes  = 4 << 20
)

// Config bounds the window. A zero field takes its default.
type Config struct {
	// MaxEvents is the most events in flight (decoded, not yet acknowledged by
	// every routed sink). Default 2048.
	MaxEvents int
	// MaxBytes is the most event bytes in flight. Default 4 MiB. A single event
	// larger than MaxBytes is still let through, alone.
	MaxBytes int64
}

// MaxSinks is the most sinks one Checkpoint tracks.
const MaxSinks = 64

// Checkpoint tracks in-flight transactions, per-sink acknowledgements and the
// window. AddSink and Restore are called before the stream starts; Begin, Add,
// Commit, Keepalive and Wait by the one goroutine that reads the replication
// stream; Safe, Drain, the progress and the acknowledgement path are safe for
// concurrent use.
type Checkpoint struct {
	maxEvents int64
	maxBytes  int64

	events atomic.Int64
	bytes  atomic.Int64

	waiting  atomic.Bool
	space    chan struct{} // signalled when the window drops below its bounds
	progress chan struct{} // signalled when a transaction completes

	mu     sync.Mutex // guards the fields below
	txs    []*Tx      // in commit order; txs[0] is the oldest in flight
	safe   uint64     // end LSN of the completed prefix, or the last keepalive WAL end
	passed uint64     // commit LSN + 1 of the newest transaction taken off txs, or 0
	sinks  []*Sink    // registered by AddSink, in bit order
	all    uint64     // the bits of every registered sink
	begun  bool       // a transaction began: no more AddSink

	// The reader goroutine's own: Add counts an event into its sinks' owed
	// counters of the transaction here, with plain increments, and hands
	// the sums over (one atomic add per sink) every publishEvery events and
	// at Commit, so the counters are exact for every committed transaction,
	// which is all Progress reads.
	floors   bool // some sink has a restored position (Restore)
	cur      *Tx
	curOwed  []int64 // per sink, not yet added to cur.owed
	curAdded int     // events counted into curOwed since the last hand-over

	lastAck atomic.Pointer[Tx] // newest completed transaction, for lag

	bounded atomic.Bool
	bound   atomic.Uint64 // see Bound
}

// New returns a Checkpoint whose safe LSN starts at start, normally the slot's
// confirmed_flush_lsn.
func New(cfg Config, start uint64) *Checkpoint {
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	return &Checkpoint{
		maxEvents: int64(cfg.MaxEvents),
		maxBytes:  cfg.MaxBytes,
		space:     make(chan struct{}, 1),
		progress:  make(chan struct{}, 1),
		safe:      start,
	}
}

// Sink is one sink's part of the checkpoint: its acknowledgements and its
// progress. Its methods are safe for concurrent use and never block, except
// Progress and Pending, which take the checkpoint's lock briefly.
type Sink struct {
	c     *Checkpoint
	name  string
	idx   int
	bit   uint64
	floor uint64        // restored position (Restore): events committed below it are not routed here
	last  atomic.Uint64 // the highest Progress returned
}

// ErrTooManySinks is returned by AddSink past MaxSinks sinks.
var ErrTooManySinks = errors.New("checkpoint: at most 64 sinks")

// AddSink registers a sink. Sinks must be registered before the first
// Begin, each under its own name. It returns ErrTooManySinks past MaxSinks.
func (c *Checkpoint) AddSink(name string) (*Sink, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.begun:
		return nil, fmt.Errorf("checkpoint: sink %s registered after the first transaction began", name)
	case len(c.sinks) >= MaxSinks:
		return nil, ErrTooManySinks
	}
	for _, s := range c.sinks {
		if s.name == name {
			return nil, fmt.Errorf("checkpoint: two sinks are named %q", name)
		}
	}
	s := &Sink{c: c, name: name, idx: len(c.sinks), bit: 1 << len(c.sinks)}
	c.sinks = append(c.sinks, s)
	c.all |= s.bit
	return s, nil
}

// Name returns the name the sink was registered under.
func (s *Sink) Name() string { return s.name }

// Bit returns the sink's bit in a set of routes (see Checkpoint.Add).
func (s *Sink) Bit() uint64 { return s.bit }

// Owes reports whether e was routed to the sink and the sink has not
// acknowledged it yet.
func (s *Sink) Owes(e *event.Event) bool { return ackstate.Of(e).Owed()&s.bit != 0 }

// Ack records the sink's acknowledgement of e and reports whether it counted:
// a second acknowledgement of e by the sink, or one for an event the sink
// does not owe, is ignored and returns false. The event is done, and its
// window space free, once every sink it was routed to acknowledged it.
func (s *Sink) Ack(e *event.Event) bool {
	st := ackstate.Of(e)
	old := st.Ack(s.bit)
	if old&s.bit == 0 {
		return false
	}
	t := st.Owner.(*Tx)
	t.owed[s.idx].Add(-1)
	if old == s.bit { // the last sink that owed it
		t.cp.release(e.Size)
		if t.pending.Add(-1) == 0 {
			t.cp.complete(t)
		}
	}
	return true
}

// Progress returns the sink's progress: a position below which every event
// routed to it has been acknowledged by it (events committed below the
// position Restore gave it included). It never goes back; 0 means nothing is
// known yet.
func (s *Sink) Progress() uint64 {
	c := s.c
	c.mu.Lock()
	p := c.passed
	for _, t := range c.txs {
		if !t.committed || t.owed[s.idx].Load() > 0 {
			break
		}
		p = t.commitLSN + 1
	}
	c.mu.Unlock()
	p = max(p, s.floor)
	for {
		last := s.last.Load()
		if p <= last {
			return last
		}
		if s.last.CompareAndSwap(last, p) {
			return p
		}
	}
}

// Pending returns how many events routed to the sink it has not
// acknowledged: queued for it, or handed to it and not acknowledged. Of the
// transaction still being received it may miss up to 256 events.
func (s *Sink) Pending() int64 {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, t := range c.txs {
		n += max(0, t.owed[s.idx].Load()) // below 0 for a while in the transaction being received
	}
	return n
}

// Restore gives each registered sink the position its progress had reached
// before a restart (as Positions returned it then): events committed below
// it are not routed to that sink again, and its progress starts there.
// Names that are not registered are ignored. Call it before the first Add.
func (c *Checkpoint) Restore(pos map[string]uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sinks {
		s.floor = pos[s.name]
		if s.floor > 0 {
			c.floors = true
		}
	}
}

// Positions returns every registered sink's Progress by name, for the
// progress table.
func (c *Checkpoint) Positions() map[string]uint64 {
	c.mu.Lock()
	sinks := c.sinks
	c.mu.Unlock()
	out := make(map[string]uint64, len(sinks))
	for _, s := range sinks {
		out[s.name] = s.Progress()
	}
	return out
}

// Tx is one transaction in flight.
type Tx struct {
	cp         *Checkpoint
	pending    atomic.Int64 // events not yet acknowledged by every routed sink, plus one until Commit
	done       atomic.Bool
	commitLSN  uint64
	end        uint64
	commitTime time.Time
	follow     uint64 // a keepalive WAL end received after this transaction
	committed  bool   // guarded by cp.mu

	owed  []atomic.Int64  // per sink: events routed to it not yet acknowledged by it
	small [4]atomic.Int64 // owed's storage for up to four sinks
}

// CommitTime returns the commit timestamp recorded by Commit.
func (t *Tx) CommitTime() time.Time { return t.commitTime }

// Begin starts tracking a new transaction. Transactions must begin in commit
// order, which is the order pgoutput sends them in.
func (c *Checkpoint) Begin() *Tx { return c.BeginAt(time.Time{}) }

// BeginAt is Begin for a transaction whose commit time is already known (the
// pgoutput Begin message carries it).
func (c *Checkpoint) BeginAt(commitTime time.Time) *Tx {
	t := &Tx{cp: c, commitTime: commitTime}
	t.pending.Store(1)
	c.mu.Lock()
	if !c.begun {
		c.begun = true
		c.curOwed = make([]int64, len(c.sinks))
	}
	if n := len(c.sinks); n <= len(t.small) {
		t.owed = t.small[:n]
	} else {
		t.owed = make([]atomic.Int64, n)
	}
	c.txs = append(c.txs, t)
	c.mu.Unlock()
	return t
}

// Add counts e into tx and the window as owed by the sinks in routes (a set
// of Sink.Bit values; others are ignored), less those whose restored
// position (Restore) is past e's commit LSN, and returns the sinks that owe
// it. An event no sink owes is
// not counted: it is done at once. Add must be called before e reaches a
// sink, and once per event.
func (c *Checkpoint) Add(tx *Tx, e *event.Event, routes uint64) uint64 {
	routes &= c.all
	if c.floors {
		for r := routes; r != 0; r &= r - 1 {
			if s := c.sinks[bits.TrailingZeros64(r)]; e.CommitLSN < s.floor {
				routes &^= s.bit
			}
		}
	}
	if routes == 0 {
		return 0
	}
	ackstate.Of(e).Route(routes, tx)
	if tx != c.cur {
		c.handOver()
		c.cur = tx
	}
	for r := routes; r != 0; r &= r - 1 {
		c.curOwed[bits.TrailingZeros64(r)]++
	}
	if c.curAdded++; c.curAdded >= publishEvery {
		c.handOver()
	}
	c.events.Add(1)
	c.bytes.Add(int64(e.Size))
	tx.pending.Add(1)
	return routes
}

// publishEvery is how many events Add counts before it hands the owed counts
// over to the transaction: Pending may miss up to that many per sink of the
// transaction being received.
const publishEvery = 256

// handOver adds the owed counts Add kept to their transaction.
func (c *Checkpoint) handOver() {
	if c.cur != nil {
		for i, n := range c.curOwed {
			if n != 0 {
				c.cur.owed[i].Add(n)
				c.curOwed[i] = 0
			}
		}
	}
	c.curAdded = 0
}

// Commit records the transaction's commit and end LSN. After Commit, the
// transaction completes once its last event is acknowledged.
func (c *Checkpoint) Commit(tx *Tx, commitLSN, end uint64, commitTime time.Time) {
	if tx == c.cur {
		c.handOver()
	}
	tx.commitLSN = commitLSN
	tx.end = end
	tx.commitTime = commitTime
	c.mu.Lock()
	tx.committed = true
	c.mu.Unlock()
	if tx.pending.Add(-1) == 0 {
		c.complete(tx)
	}
}

// DropOpen forgets the transaction still being received, if any, after the
// replication connection was lost mid-transaction. The server sends it again
// whole from the confirmed position; its events already handed to sinks may
// still be acknowledged, which only releases window space.
func (c *Checkpoint) DropOpen() {
	c.handOver()
	c.cur = nil
	c.mu.Lock()
	if n := len(c.txs); n > 0 && !c.txs[n-1].committed {
		c.txs[n-1] = nil
		c.txs = c.txs[:n-1]
	}
	c.mu.Unlock()
}

// Keepalive records the server's WAL end from a keepalive. Every transaction
// that commits before walEnd has been received by now, so once those in
// flight complete, the safe LSN may move up to walEnd.
func (c *Checkpoint) Keepalive(walEnd uint64) {
	c.mu.Lock()
	if n := len(c.txs); n == 0 {
		if walEnd > c.safe {
			c.safe = walEnd
		}
	} else if t := c.txs[n-1]; walEnd > t.follow {
		t.follow = walEnd
	}
	c.mu.Unlock()
}

// Bound caps what Safe reports at lsn from now on; later calls only raise
// the cap. The outbox's membership of the publication was last verified at
// lsn: a keepalive's WAL end, a heartbeat or any transaction after it may lie
// past the point where an outbox table left the publication, and rows written
// after that point are not in the stream, so the slot must not be confirmed
// past it. Without a call to Bound, Safe is not capped. Safe for concurrent
// use; call it before the first Safe.
func (c *Checkpoint) Bound(lsn uint64) {
	for {
		cur := c.bound.Load()
		if lsn <= cur || c.bound.CompareAndSwap(cur, lsn) {
			break
		}
	}
	c.bounded.Store(true)
}

// Lift removes the cap until the next Bound. A PostgreSQL shutdown waits
// until the client confirmed everything the server sent, and membership
// cannot be verified while the server shuts down. Safe for concurrent use.
func (c *Checkpoint) Lift() { c.bounded.Store(false) }

// Safe returns the LSN up to which every routed sink has acknowledged every
// event: the end of the longest prefix of completed transactions, or, with
// nothing in flight, the last keepalive's WAL end; never more than the
// Bound. It never goes backwards.
func (c *Checkpoint) Safe() uint64 {
	s := c.Unbounded()
	if c.bounded.Load() {
		s = min(s, c.bound.Load())
	}
	return s
}

// Unbounded is Safe without the Bound: how far the slot could move if the
// publication membership were verified now.
func (c *Checkpoint) Unbounded() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 0
	for ; i < len(c.txs) && c.txs[i].done.Load(); i++ {
		t := c.txs[i]
		c.safe = max(c.safe, t.end, t.follow)
		c.passed = max(c.passed, t.commitLSN+1)
		c.lastAck.Store(t)
		c.txs[i] = nil
	}
	if i > 0 {
		c.txs = c.txs[i:]
		if len(c.txs) == 0 {
			c.txs = c.txs[:0:0] // let the backing array go
		}
	}
	return c.safe
}

// Oldest returns the commit time of the oldest transaction not yet completed,
// as of now, and false when nothing is in flight.
func (c *Checkpoint) Oldest() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.txs {
		if !t.done.Load() {
			return t.commitTime, true
		}
	}
	return time.Time{}, false
}

// InFlight returns the events and bytes in the window.
func (c *Checkpoint) InFlight() (events, bytes int64) {
	return c.events.Load(), c.bytes.Load()
}

// Unconfirmed returns the transactions still in flight (some event not yet
// acknowledged by every routed sink) and the events in the window: what a
// stop now leaves for the server to send again. Safe for concurrent use.
func (c *Checkpoint) Unconfirmed() (txs int, events int64) {
	c.mu.Lock()
	for _, t := range c.txs {
		if !t.done.Load() {
			txs++
		}
	}
	c.mu.Unlock()
	return txs, c.events.Load()
}

// LastAcked returns the commit time of the newest transaction in the
// completed prefix, as of the last call to Safe.
func (c *Checkpoint) LastAcked() (time.Time, bool) {
	if t := c.lastAck.Load(); t != nil {
		return t.commitTime, true
	}
	return time.Time{}, false
}

// Wait returns nil when the window has room, or a channel that is signalled
// when it may have room again (check again then).
func (c *Checkpoint) Wait() <-chan struct{} {
	if !c.full() {
		return nil
	}
	c.waiting.Store(true)
	if !c.full() { // an acknowledgement may have raced the store above
		c.waiting.Store(false)
		return nil
	}
	return c.space
}

// Progress returns a channel signalled whenever a transaction completes.
func (c *Checkpoint) Progress() <-chan struct{} { return c.progress }

// Drain blocks until nothing is in flight or ctx is done, and returns the safe
// LSN then.
func (c *Checkpoint) Drain(ctx context.Context) (uint64, error) {
	for {
		safe := c.Safe()
		c.mu.Lock()
		empty := len(c.txs) == 0
		c.mu.Unlock()
		if empty {
			return safe, nil
		}
		select {
		case <-c.progress:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return c.Safe(), ctx.Err()
		}
	}
}

func (c *Checkpoint) full() bool {
	return c.events.Load() >= c.maxEvents || c.bytes.Load() >= c.maxBytes
}

func (c *Checkpoint) release(size int) {
	c.events.Add(-1)
	c.bytes.Add(-int64(size))
	if c.waiting.Load() && !c.full() {
		c.waiting.Store(false)
		select {
		case c.space <- struct{}{}:
		default:
		}
	}
}

func (c *Checkpoint) complete(t *Tx) {
	t.done.Store(true)
	select {
	case c.progress <- struct{}{}:
	default:
	}
}
