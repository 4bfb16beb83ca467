package checkpoint

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
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

// Checkpoint tracks in-flight transactions and the window. Begin, Add, Commit,
// Keepalive and Wait are called by the one goroutine that reads the
// replication stream; Safe, Drain and the acknowledgement path are safe for
// concurrent use.
type Checkpoint struct {
	maxEvents int64
	maxBytes  int64

	events atomic.Int64
	bytes  atomic.Int64

	waiting  atomic.Bool
	space    chan struct{} // signalled when the window drops below its bounds
	progress chan struct{} // signalled when a transaction completes

	mu   sync.Mutex // guards the fields below
	txs  []*Tx      // in commit order; txs[0] is the oldest in flight
	safe uint64     // end LSN of the completed prefix, or the last keepalive WAL end

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

// Tx is one transaction in flight.
type Tx struct {
	cp         *Checkpoint
	pending    atomic.Int64 // unacknowledged events, plus one until Commit
	done       atomic.Bool
	commitLSN  uint64
	end        uint64
	commitTime time.Time
	follow     uint64 // a keepalive WAL end received after this transaction
	committed  bool   // guarded by cp.mu
}

// CommitTime returns the commit timestamp recorded by Commit.
func (t *Tx) CommitTime() time.Time { return t.commitTime }

// Done implements event.Tracker: it is called once per event after every routed
// sink acknowledged it. It never blocks.
func (t *Tx) Done(e *event.Event) {
	t.cp.release(e.Size)
	if t.pending.Add(-1) == 0 {
		t.cp.complete(t)
	}
}

// Begin starts tracking a new transaction. Transactions must begin in commit
// order, which is the order pgoutput sends them in.
func (c *Checkpoint) Begin() *Tx { return c.BeginAt(time.Time{}) }

// BeginAt is Begin for a transaction whose commit time is already known (the
// pgoutput Begin message carries it).
func (c *Checkpoint) BeginAt(commitTime time.Time) *Tx {
	t := &Tx{cp: c, commitTime: commitTime}
	t.pending.Store(1)
	c.mu.Lock()
	c.txs = append(c.txs, t)
	c.mu.Unlock()
	return t
}

// Add counts e into tx and the window and attaches the acknowledgement
// tracking for sinks routed sinks. It must be called before e reaches a sink.
func (c *Checkpoint) Add(tx *Tx, e *event.Event, sinks int) {
	c.events.Add(1)
	c.bytes.Add(int64(e.Size))
	tx.pending.Add(1)
	e.Track(tx, sinks)
}

// Commit records the transaction's commit and end LSN. After Commit, the
// transaction completes once its last event is acknowledged.
func (c *Checkpoint) Commit(tx *Tx, commitLSN, end uint64, commitTime time.Time) {
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
