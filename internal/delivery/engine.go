package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// DefaultMaxBatch is Config.MaxBatch's default.
const DefaultMaxBatch = 1024

// maxAckRun caps the events an ordered engine acknowledges between two looks
// at its other work.
const maxAckRun = 1024

// Config configures an Engine.
type Config struct {
	// Name is the sink's configured name, for errors, logs and metrics.
	Name string
	// MaxInFlight is the most events taken by Publish and not yet
	// acknowledged; Publish blocks beyond it. Required, at least 1.
	MaxInFlight int
	// MaxBatch is the most messages handed to one Adapter.Send call.
	// Default DefaultMaxBatch (1024).
	MaxBatch int
	// Ordered acknowledges events in Publish order: an event only after
	// every event before it. Default false: each as its broker confirms it.
	Ordered bool
	// EncodeErrorsStick makes an event that Adapter.Encode refuses the
	// sink's permanent failure, as one the broker refused: Publish and Flush
	// return it until the sink is reopened. Default false: Publish returns
	// it and the sink stays usable.
	EncodeErrorsStick bool
	// Retry paces the resend rounds after a transient failure. The zero
	// value is retry.Backoff's defaults (100ms doubling to 30s).
	Retry retry.Backoff
	// Wake, when not nil, cuts a backoff short when it receives (a
	// reconnection).
	Wake <-chan struct{}
	// Ack acknowledges an event for the sink: the sink's sink.Options.Ack.
	// It must not block. Default: nothing.
	Ack func(*event.Event)
	// Logger receives one line per state change. Default: discards.
	Logger *slog.Logger
	// Observer receives Retried for every failed round. Default: ignores.
	Observer sink.Observer
	// Health, when not nil, is the one the adapter shares (so that its own
	// per-endpoint signals and the engine's use the same lines). Default: a
	// new one.
	Health *Health
}

// Adapter encodes, sends and classifies for one broker. M is its message:
// the engine keeps one *M per event in flight, taken from a pool, and hands
// it back with Release once the event left the window.
type Adapter[M any] interface {
	// Encode fills m, a message fresh from the pool or released before,
	// for e. It runs on the Publish goroutine. An error means e can never
	// be delivered (Publish returns it as a *sink.PermanentError naming e),
	// except context errors, which Publish returns as they are.
	Encode(ctx context.Context, e *event.Event, m *M) error
	// Send hands the messages of b to the broker, in order. It runs on the
	// engine goroutine, one call at a time, and must settle every message
	// of b (Batch.Settle), before it returns or later from any goroutine;
	// a message it does not send is settled with ErrNotSent. After handing
	// a message to the broker Send must not read it through b again: its
	// settlement may free it. ctx is canceled when the sink closes; then
	// messages may stay unsettled.
	Send(ctx context.Context, b *Batch[M])
	// Release drops m's references to its event and to anything large,
	// keeping buffers worth reusing; m then goes back to the pool.
	Release(m *M)
}

// Recoverer is implemented by adapters that act on a transient failure
// before the engine resends. Recover runs on the engine goroutine after
// every message sent has settled and after the backoff; cause is the error
// of the earliest failed message. It may mark messages the broker is known
// to hold as stored (Pending.MarkStored), wait for a connection, and return
// a permanent error (the sink's failure, naming the earliest event not
// stored), another transient one (one more round) or nil (resend now).
type Recoverer[M any] interface {
	Recover(ctx context.Context, cause error, p *Pending[M]) error
}

// Deliverer is implemented by adapters that need to see each message right
// before its event is acknowledged, with the note it was stored with. For
// an ordered engine Delivered runs on the engine goroutine, in order, and
// may block briefly (one request); for an unordered one it runs inside
// Settle and must not block.
type Deliverer[M any] interface {
	Delivered(e *event.Event, m *M, note uint64)
}

// Flusher is implemented by adapters whose client holds messages back for a
// while (a linger): Engine.Flush calls Flush first, so that they go out at
// once. It blocks until the client's buffered messages are settled or ctx
// is done.
type Flusher interface {
	Flush(ctx context.Context) error
}

// Slot states.
const (
	slotFree   uint8 = iota
	slotQueued       // committed by Publish, to be sent
	slotSent         // handed to Send, outcome pending
	slotStored       // the broker holds it; acknowledged in its turn (ordered)
	slotFailed       // its send failed
	slotDone         // acknowledged; freed when the oldest slots are (unordered)
)

type slot[M any] struct {
	m     *M
	e     *event.Event
	seq   uint64
	note  uint64
	err   error
	gen   uint32
	state uint8
}

// Engine delivers one sink's events through an Adapter. New starts its
// goroutine; Close stops it. Publish and Flush are called from one
// goroutine; Settle, Stored, FailSent, Failure and InFlight from any; Close
// from any, more than once.
type Engine[M any] struct {
	cfg    Config
	ad     Adapter[M]
	rec    Recoverer[M]
	dlv    Deliverer[M]
	fl     Flusher
	health *Health
	pool   sync.Pool

	ring     []slot[M]
	mask     uint64
	max      uint64 // MaxInFlight
	lowWater uint64 // a blocked Publish wakes when this many slots are free

	mu sync.Mutex
	// Window: [head, next) handed to Send at least once; [next, committed)
	// queued; [committed, tail) reserved by the Publish in progress.
	head, next, committed, tail uint64
	sent                        int    // slots in slotSent
	failedAt                    uint64 // earliest transiently failed slot, when hasFailed
	hasFailed                   bool
	failure                     *sink.PermanentError // sticky
	failSeq                     uint64
	attempt                     int // failed rounds since an event was last acknowledged
	closed                      bool
	spaceWait                   bool
	flushWait                   bool
	changed                     chan struct{} // closed and replaced to wake Publish and Flush

	wake   chan struct{} // capacity 1: the engine goroutine has work
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	// released is closed once Close's release returned.
	released chan struct{}

	// Engine goroutine only.
	batch Batch[M]
	pend  Pending[M]
}

// New returns an engine for ad and starts its goroutine; Close must be
// called to stop it. It panics when cfg.MaxInFlight < 1 (a programming
// error: sinks validate their settings first).
func New[M any](cfg Config, ad Adapter[M]) *Engine[M] {
	if cfg.MaxInFlight < 1 {
		panic("delivery: MaxInFlight must be at least 1")
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = sink.NopObserver{}
	}
	if cfg.Ack == nil {
		cfg.Ack = func(*event.Event) {}
	}
	if cfg.Health == nil {
		cfg.Health = NewHealth(cfg.Name, cfg.Logger, cfg.Observer)
	}
	size := uint64(1) << bits.Len64(uint64(cfg.MaxInFlight-1))
	e := &Engine[M]{
		cfg:      cfg,
		ad:       ad,
		health:   cfg.Health,
		ring:     make([]slot[M], size),
		mask:     size - 1,
		max:      uint64(cfg.MaxInFlight),
		lowWater: max(1, uint64(cfg.MaxInFlight)/4),
		changed:  make(chan struct{}),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		released: make(chan struct{}),
	}
	e.pool.New = func() any { return new(M) }
	e.rec, _ = ad.(Recoverer[M])
	e.dlv, _ = ad.(Deliverer[M])
	e.fl, _ = ad.(Flusher)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.batch.e, e.pend.e = e, e
	go e.run()
	return e
}

// Health returns the engine's health, which the adapter may feed with its
// own per-endpoint signals.
func (e *Engine[M]) Health() *Health { return e.health }

// Publish takes events in order: each is encoded and queued for sending,
// and acknowledged once its broker confirmed it. Publish blocks while
// MaxInFlight events are unacknowledged.
//
// It returns ctx.Err() when ctx is done while it waits for room (the events
// before were taken), sink.ErrClosed after Close, the sink's permanent
// failure (a *sink.PermanentError) once there is one, and a
// *sink.PermanentError for an event that cannot be encoded: that event and
// the ones after it are not taken, the ones before are, and the sink stays
// usable. Publish does not keep the slice; it keeps the events until they
// are acknowledged or the sink is closed.
func (e *Engine[M]) Publish(ctx context.Context, events []*event.Event) error {
	e.mu.Lock()
	err := e.stateErrLocked()
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for len(events) > 0 {
		e.mu.Lock()
		var free uint64
		for {
			if err := e.stateErrLocked(); err != nil {
				e.mu.Unlock()
				return err
			}
			if free = e.max - (e.tail - e.head); free > 0 {
				break
			}
			e.spaceWait = true
			ch := e.changed
			e.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
			e.mu.Lock()
		}
		n := min(free, uint64(len(events)))
		base := e.tail
		e.tail += n
		e.mu.Unlock()

		// Slots [base, base+n) are this goroutine's until committed.
		for i := range n {
			ev := events[i]
			m := e.pool.Get().(*M)
			if err := e.ad.Encode(ctx, ev, m); err != nil {
				e.ad.Release(m)
				e.pool.Put(m)
				err = e.encodeError(ev, err)
				e.mu.Lock()
				e.commitLocked(base + i)
				e.tail = base + i
				var pe *sink.PermanentError
				if e.cfg.EncodeErrorsStick && errors.As(err, &pe) {
					e.stickLocked(base+i, pe)
				}
				e.mu.Unlock()
				return err
			}
			e.ring[(base+i)&e.mask] = slot[M]{m: m, e: ev, seq: base + i, state: slotQueued}
		}
		e.mu.Lock()
		e.commitLocked(base + n)
		e.mu.Unlock()
		events = events[n:]
	}
	return nil
}

func (e *Engine[M]) commitLocked(to uint64) {
	if to > e.committed {
		e.committed = to
		signal(e.wake)
	}
}

// encodeError is what Publish returns for an event Encode refused.
func (e *Engine[M]) encodeError(ev *event.Event, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return e.permanentFor(ev, err)
}

// permanentFor names ev in err, unless err is a *sink.PermanentError already.
func (e *Engine[M]) permanentFor(ev *event.Event, err error) *sink.PermanentError {
	var pe *sink.PermanentError
	if errors.As(err, &pe) {
		return pe
	}
	var p *permanent
	if errors.As(err, &p) && p == err {
		err = p.err
	}
	return &sink.PermanentError{Sink: e.cfg.Name, EventID: ev.ID, Err: err}
}

// stateErrLocked returns sink.ErrClosed or the permanent failure.
func (e *Engine[M]) stateErrLocked() error {
	if e.closed {
		return sink.ErrClosed
	}
	if e.failure != nil {
		return e.failure
	}
	return nil
}

// Flush blocks until every event taken by Publish was acknowledged. It
// returns the permanent failure once there is one (after acknowledging the
// events before it that are stored), sink.ErrClosed after Close, or
// ctx.Err() when ctx is done first.
func (e *Engine[M]) Flush(ctx context.Context) error {
	e.mu.Lock()
	done := e.flushDoneLocked()
	empty := e.head == e.tail
	e.mu.Unlock()
	if !done && !empty && e.fl != nil {
		if err := e.fl.Flush(ctx); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	e.mu.Lock()
	for !e.flushDoneLocked() {
		e.flushWait = true
		ch := e.changed
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		e.mu.Lock()
	}
	err := e.stateErrLocked()
	e.mu.Unlock()
	return err
}

// flushDoneLocked reports whether Flush may return: the engine is closed,
// or it failed and has no stored events before the failed one left to
// acknowledge, or every event is acknowledged.
func (e *Engine[M]) flushDoneLocked() bool {
	switch {
	case e.closed:
		return true
	case e.failure != nil:
		return !e.cfg.Ordered || e.head >= e.failSeq || e.head >= e.next ||
			e.ring[e.head&e.mask].state != slotStored
	}
	return e.head == e.tail
}

// Failure returns the sink's permanent failure (a *sink.PermanentError), or
// nil.
func (e *Engine[M]) Failure() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failure == nil {
		return nil
	}
	return e.failure
}

// InFlight returns how many events were taken by Publish and are not
// acknowledged yet.
func (e *Engine[M]) InFlight() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return int(e.tail - e.head)
}

// Close stops the engine: Publish and Flush return sink.ErrClosed from now
// on, nothing more is acknowledged, and events not acknowledged stay so.
// It calls release (the adapter's client close, which must unblock a Send
// in progress; it may be nil) once, then waits for the engine goroutine
// until ctx is done. Close is idempotent; later calls wait for the first.
func (e *Engine[M]) Close(ctx context.Context, release func()) error {
	e.mu.Lock()
	first := !e.closed
	e.closed = true
	e.notifyLocked()
	e.mu.Unlock()
	if first {
		e.cancel()
		if release != nil {
			release()
		}
		close(e.released)
	}
	for _, c := range []chan struct{}{e.released, e.done} {
		select {
		case <-c:
		case <-ctx.Done():
			return fmt.Errorf("sink %s: the delivery goroutine did not stop: %w", e.cfg.Name, ctx.Err())
		}
	}
	return nil
}

// Settle reports the outcome of the message t was taken for: stored (err
// nil) or failed. A permanent error (sink.IsPermanent) is the sink's
// failure; any other is retried. Settlements of messages that are not in
// flight under t (a send that was already settled, or superseded by a
// resend) and after Close are ignored. Safe for concurrent use; never
// blocks.
func (e *Engine[M]) Settle(t Ticket, err error) {
	e.settle(t, err, 0)
}

// Stored reports that the message t was taken for is stored, with a note
// the adapter's Deliverer receives (e.g. "a duplicate of the message with
// this sequence number").
func (e *Engine[M]) Stored(t Ticket, note uint64) {
	e.settle(t, nil, note)
}

func (e *Engine[M]) settle(t Ticket, err error, note uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || t.seq < e.head || t.seq >= e.next {
		return
	}
	s := &e.ring[t.seq&e.mask]
	if s.seq != t.seq || s.gen != t.gen || s.state != slotSent {
		return
	}
	e.sent--
	if err != nil {
		e.failLocked(s, err)
		signal(e.wake)
		return
	}
	s.state, s.note = slotStored, note
	if e.cfg.Ordered {
		signal(e.wake)
		return
	}
	e.deliverLocked(s)
	if e.hasFailed && e.sent == 0 {
		signal(e.wake)
	}
}

// FailSent fails, with err, every message in flight for which match is true.
// It is for failures the broker reports apart from the messages (a
// permission violation naming a subject). match runs with the engine's
// mutex held and may read only what Encode set.
func (e *Engine[M]) FailSent(match func(m *M) bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	hit := false
	for seq := e.head; seq < e.next; seq++ {
		s := &e.ring[seq&e.mask]
		if s.state == slotSent && match(s.m) {
			e.sent--
			e.failLocked(s, err)
			hit = true
		}
	}
	if hit {
		signal(e.wake)
	}
}

func (e *Engine[M]) failLocked(s *slot[M], err error) {
	s.state, s.err = slotFailed, err
	if sink.IsPermanent(err) {
		e.setFailureLocked(s, err)
		return
	}
	if !e.hasFailed || s.seq < e.failedAt {
		e.failedAt, e.hasFailed = s.seq, true
	}
}

func (e *Engine[M]) setFailureLocked(s *slot[M], err error) {
	e.stickLocked(s.seq, e.permanentFor(s.e, err))
}

// stickLocked makes pe, the failure of the event at seq, the sink's
// permanent failure unless an earlier event's is.
func (e *Engine[M]) stickLocked(seq uint64, pe *sink.PermanentError) {
	if e.failure == nil {
		e.cfg.Logger.Error(msgStopped, "sink", e.cfg.Name, "event", pe.EventID, "err", pe.Err)
	}
	if e.failure == nil || seq < e.failSeq {
		e.failure, e.failSeq = pe, seq
	}
	e.notifyLocked()
}

// deliverLocked acknowledges the stored slot s of an unordered engine and
// frees the oldest slots that are done.
func (e *Engine[M]) deliverLocked(s *slot[M]) {
	if e.dlv != nil {
		e.dlv.Delivered(s.e, s.m, s.note)
	}
	e.cfg.Ack(s.e)
	s.state = slotDone
	if e.attempt > 0 {
		e.attempt = 0
		e.health.OK("")
	}
	if s.seq != e.head {
		return
	}
	for e.head < e.next {
		h := &e.ring[e.head&e.mask]
		if h.state != slotDone {
			break
		}
		e.releaseLocked(h)
		e.head++
	}
	e.notifyLocked()
}

func (e *Engine[M]) releaseLocked(s *slot[M]) {
	e.ad.Release(s.m)
	e.pool.Put(s.m)
	*s = slot[M]{}
}

// notifyLocked wakes a blocked Publish or Flush when what it waits for came
// true.
func (e *Engine[M]) notifyLocked() {
	stop := e.closed || e.failure != nil
	wake := e.spaceWait && (stop || e.max-(e.tail-e.head) >= e.lowWater) ||
		e.flushWait && e.flushDoneLocked()
	if wake {
		close(e.changed)
		e.changed = make(chan struct{})
		e.spaceWait, e.flushWait = false, false
	}
}

// run is the engine goroutine: it acknowledges (ordered), recovers from
// transient failures and sends, until Close.
func (e *Engine[M]) run() {
	defer close(e.done)
	e.mu.Lock()
	for {
		retry := e.hasFailed && (e.failure == nil || e.failedAt < e.failSeq)
		switch {
		case e.closed:
			e.mu.Unlock()
			return
		case e.cfg.Ordered && e.ackRunLocked():
		case retry && e.sent > 0:
			e.waitLocked() // let every message sent settle before resending
		case retry:
			e.recoverLocked()
		case e.sendLocked():
		default:
			e.waitLocked()
		}
	}
}

func (e *Engine[M]) waitLocked() {
	e.mu.Unlock()
	select {
	case <-e.wake:
	case <-e.ctx.Done():
	}
	e.mu.Lock()
}

// ackRunLocked acknowledges the stored slots at the head of an ordered
// window, up to maxAckRun, and reports whether there were any. It releases
// the mutex while acknowledging: only this goroutine frees slots.
func (e *Engine[M]) ackRunLocked() bool {
	from, n := e.head, uint64(0)
	for from+n < e.next && n < maxAckRun && e.ring[(from+n)&e.mask].state == slotStored {
		n++
	}
	if n == 0 {
		return false
	}
	e.mu.Unlock()
	for seq := from; seq < from+n; seq++ {
		s := &e.ring[seq&e.mask]
		if e.dlv != nil {
			e.dlv.Delivered(s.e, s.m, s.note)
		}
		e.cfg.Ack(s.e)
	}
	e.mu.Lock()
	for seq := from; seq < from+n; seq++ {
		e.releaseLocked(&e.ring[seq&e.mask])
	}
	e.head += n
	if e.attempt > 0 {
		e.attempt = 0
		e.health.OK("")
	}
	e.notifyLocked()
	return true
}

// sendLocked hands the next run of queued slots to the adapter and reports
// whether there was one. After a permanent failure only the slots before
// the failed one are sent.
func (e *Engine[M]) sendLocked() bool {
	limit := e.committed
	if e.failure != nil {
		limit = min(limit, e.failSeq)
	}
	skipped := false
	for e.next < limit && e.ring[e.next&e.mask].state != slotQueued {
		e.next++ // stored while recovering: not sent again
		skipped = true
	}
	start, end := e.next, e.next
	for end < limit && end-start < uint64(e.cfg.MaxBatch) {
		s := &e.ring[end&e.mask]
		if s.state != slotQueued {
			break
		}
		s.state = slotSent
		s.gen++
		end++
	}
	if end == start {
		return skipped // the skipped ones may be acknowledged now
	}
	e.sent += int(end - start)
	e.next = end
	var prev *M
	if e.cfg.Ordered && start > e.head {
		prev = e.ring[(start-1)&e.mask].m
	}
	e.batch.from, e.batch.n, e.batch.prev = start, int(end-start), prev
	e.mu.Unlock()
	e.ad.Send(e.ctx, &e.batch)
	e.mu.Lock()
	return true
}

// recoverLocked runs one recovery round: report, back off, let the adapter
// look, then queue every failed slot again.
func (e *Engine[M]) recoverLocked() {
	failed := &e.ring[e.failedAt&e.mask]
	cause := failed.err
	e.attempt++
	attempt, unacked := e.attempt, e.tail-e.head
	from, n := e.head, e.committed-e.head
	e.mu.Unlock()

	e.health.Failed("", cause, "unacknowledged", unacked)
	ok := e.backoff(attempt)
	var rerr error
	if ok && e.rec != nil {
		e.pend.from, e.pend.n = from, int(n)
		rerr = e.rec.Recover(e.ctx, cause, &e.pend)
	}

	e.mu.Lock()
	if !ok || e.closed {
		return
	}
	limit := e.next
	if e.failure != nil {
		limit = min(limit, e.failSeq)
	}
	if rerr != nil {
		if e.ctx.Err() != nil {
			return
		}
		if sink.IsPermanent(rerr) {
			for seq := e.head; seq < limit; seq++ {
				if s := &e.ring[seq&e.mask]; s.state == slotFailed {
					e.setFailureLocked(s, rerr)
					return
				}
			}
		}
		e.ring[e.failedAt&e.mask].err = rerr // one more round
		return
	}
	first := e.next
	for seq := e.head; seq < limit; seq++ {
		if s := &e.ring[seq&e.mask]; s.state == slotFailed {
			s.state, s.err = slotQueued, nil
			first = min(first, seq)
		}
	}
	e.next = first
	e.hasFailed = false
}

// backoff waits the delay before resend round attempt, cut short by
// Config.Wake; false when the engine is closing.
func (e *Engine[M]) backoff(attempt int) bool {
	d := e.cfg.Retry.Delay(attempt)
	if d <= 0 {
		return e.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-e.cfg.Wake:
	case <-e.ctx.Done():
		return false
	}
	return true
}

// signal makes a non-blocking send on a channel of capacity 1.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
