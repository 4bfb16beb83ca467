package handler

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// Pruner is implemented by stores that can delete the records of events
// handled longer ago than age; it returns how many it deleted.
type Pruner interface {
	Prune(ctx context.Context, age time.Duration) (int64, error)
}

// Consumer runs the deliveries of one Source through a Router: per-key
// order, retries, the inbox, parking and acknowledgement (see the package
// documentation).
type Consumer struct {
	e   *engine
	src Source
}

// NewConsumer checks cfg and returns a Consumer of src's deliveries. It
// starts nothing; call Run.
func NewConsumer(cfg Config, r *Router, src Source) (*Consumer, error) {
	if r == nil || src == nil {
		return nil, &ConfigError{Field: "NewConsumer", Reason: "needs a router and a source"}
	}
	e, err := newEngine(cfg, r)
	if err != nil {
		return nil, err
	}
	return &Consumer{e: e, src: src}, nil
}

// Run consumes until ctx is done or the source fails for good. On the way
// out it stops reading, releases what is queued, waits for running handlers
// (Config.DrainTimeout), lets the source settle with the broker, and
// returns: nil after ctx is done, else the source's error. Run starts
// Config.Concurrency workers plus the replay and pruning loops and joins
// them all before it returns. Call it once.
func (c *Consumer) Run(ctx context.Context) error {
	c.e.start(ctx)
	err := c.src.Run(ctx, c.e)
	c.e.stop()
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = nil
	}
	return err
}

// engine is the part of a Consumer that a Sink shares.
type engine struct {
	cfg    Config
	router *Router
	d      *dispatcher
	back   Backoff

	runCtx     context.Context // done: start no new attempt
	workCtx    context.Context // the handlers' ctx; cancelled after the drain timeout
	cancelWork context.CancelFunc
	cancelBg   context.CancelFunc
	wg         sync.WaitGroup
	drainOnce  sync.Once

	replaying sync.Map // dedup key → struct{}: replays queued or running
}

func newEngine(cfg Config, r *Router) (*engine, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r.freeze()
	return &engine{cfg: cfg, router: r, d: newDispatcher(cfg.MaxBuffered), back: cfg.Backoff}, nil
}

func (e *engine) start(ctx context.Context) {
	e.runCtx = ctx
	e.workCtx, e.cancelWork = context.WithCancel(context.WithoutCancel(ctx))
	bg, cancel := context.WithCancel(ctx)
	e.cancelBg = cancel
	for range e.cfg.Concurrency {
		e.wg.Go(e.work)
	}
	if e.cfg.DeadLetters != nil {
		e.wg.Go(func() { e.replayLoop(bg) })
	}
	if p, ok := e.cfg.Store.(Pruner); ok && e.cfg.Retention > 0 {
		e.wg.Go(func() { e.pruneLoop(bg, p) })
	}
}

func (e *engine) stop() {
	e.cancelBg()
	e.Drain()
	e.d.stop()
	e.wg.Wait()
	e.cancelWork()
}

// Queue implementation.

func (e *engine) Submit(ctx context.Context, d *Delivery) error { return e.d.submit(ctx, d) }
func (e *engine) Drop(match func(*Delivery) bool) int           { return e.d.drop(match) }
func (e *engine) Consumer() string                              { return e.cfg.Name }
func (e *engine) Observer() Observer                            { return e.cfg.Observer }
func (e *engine) Logger() *slog.Logger                          { return e.cfg.Logger }

func (e *engine) Drain() {
	e.drainOnce.Do(func() {
		if !e.d.close(e.cfg.DrainTimeout) {
			e.cfg.Logger.Warn("handlers still running after the drain timeout; cancelling them", "consumer", e.cfg.Name, "drain_timeout", e.cfg.DrainTimeout)
			e.cancelWork()
			e.d.waitIdle(time.Hour)
		}
	})
}

func (e *engine) work() {
	for {
		kq, d := e.d.next()
		if kq == nil {
			return
		}
		e.process(d)
		e.d.done(kq)
	}
}

func revoked(d *Delivery) bool {
	if d.Revoked == nil {
		return false
	}
	select {
	case <-d.Revoked:
		return true
	default:
		return false
	}
}

func release(d *Delivery) {
	if d.Release != nil {
		d.Release()
	}
}

// process runs one delivery to its settlement.
func (e *engine) process(d *Delivery) {
	log := e.cfg.Logger
	if d.Err != nil {
		log.Warn("message is not a valid CloudEvent; skipped", "consumer", e.cfg.Name, "position", d.Position, "err", d.Err)
		e.cfg.Observer.Invalid(e.cfg.Name)
		d.Ack()
		return
	}
	route, h, ok := e.router.Match(d.Event.Type())
	if !ok {
		e.cfg.Observer.Unrouted(e.cfg.Name)
		d.Ack()
		return
	}
	failures := 0
	for attempt := 1; ; attempt++ {
		if e.runCtx.Err() != nil || revoked(d) {
			release(d)
			return
		}
		start := time.Now()
		err := e.once(d, h, attempt)
		if err == nil {
			e.cfg.Observer.Handled(e.cfg.Name, route, time.Since(start))
			if failures > 0 {
				log.Info("event took effect after failed attempts", "consumer", e.cfg.Name, "key", d.Key, "id", d.Event.ID(), "attempts", attempt)
			}
			d.Ack()
			return
		}
		if errors.Is(err, ErrDuplicate) {
			e.cfg.Observer.Duplicate(e.cfg.Name)
			d.Ack()
			return
		}
		if e.workCtx.Err() != nil {
			release(d) // cancelled at the end of the drain
			return
		}
		if errors.Is(err, ErrBusy) {
			attempt-- // another consumer holds it: wait, without spending attempts
		} else {
			failures++
		}
		last := failures >= e.cfg.Attempts || IsPermanent(err)
		retry := !last || (e.cfg.DeadLetters == nil && d.Nak == nil)
		if !errors.Is(err, ErrBusy) {
			e.cfg.Observer.Failed(e.cfg.Name, route, retry)
		}
		if failures == 1 || (last && !retry) || failures == e.cfg.Attempts {
			log.Warn("handler failed", "consumer", e.cfg.Name, "type", d.Event.Type(), "source", d.Event.Source(), "id", d.Event.ID(),
				"key", d.Key, "position", d.Position, "attempt", failures, "of", e.cfg.Attempts, "err", err)
		}
		if last && e.cfg.DeadLetters != nil {
			if e.park(d, failures, err) {
				e.cfg.Observer.DeadLettered(e.cfg.Name, route)
				d.Ack()
			} else {
				release(d)
			}
			return
		}
		if last && d.Nak != nil {
			d.Nak(e.back.Delay(failures))
			return
		}
		if !e.sleep(d, max(failures, 1)) {
			release(d)
			return
		}
	}
}

// once runs one attempt, through the store when there is one.
func (e *engine) once(d *Delivery, h Handler, attempt int) error {
	ctx := withTrace(e.workCtx, &d.Event)
	ctx = context.WithValue(ctx, infoKey{}, DeliveryInfo{Position: d.Position, Redelivered: d.Redelivered, Attempt: attempt})
	run := func(ctx context.Context) (err error) {
		defer func() {
			if v := recover(); v != nil {
				err = &PanicError{Value: v}
			}
		}()
		return h(ctx, d.Event)
	}
	if e.cfg.Store != nil {
		return e.cfg.Store.Once(ctx, e.cfg.Name, &d.Event, run)
	}
	return run(ctx)
}

// sleep waits the backoff after failed attempt n; false when the consumer
// stops or the delivery was revoked meanwhile.
func (e *engine) sleep(d *Delivery, n int) bool {
	t := time.NewTimer(e.back.Delay(n))
	defer t.Stop()
	var rev <-chan struct{}
	if d.Revoked != nil {
		rev = d.Revoked
	}
	select {
	case <-t.C:
		return true
	case <-e.runCtx.Done():
		return false
	case <-rev:
		return false
	}
}

// park stores d as a dead letter, retrying the store until it takes it or
// the consumer stops; false means it gave up.
func (e *engine) park(d *Delivery, attempts int, cause error) bool {
	p := Parked{Event: d.Event, Key: d.Key, Attempts: attempts, Reason: cause.Error()}
	for try := 1; ; try++ {
		err := e.cfg.DeadLetters.Park(e.workCtx, e.cfg.Name, p)
		if err == nil {
			e.cfg.Logger.Warn("event parked after its last attempt; `outbox-cdc inbox replay` runs it again", "consumer", e.cfg.Name,
				"type", d.Event.Type(), "source", d.Event.Source(), "id", d.Event.ID(), "key", d.Key, "attempts", attempts, "reason", p.Reason)
			return true
		}
		if try == 1 {
			e.cfg.Logger.Warn("cannot park event; retrying", "consumer", e.cfg.Name, "id", d.Event.ID(), "err", err)
		}
		if !e.sleep(d, try) {
			return false
		}
	}
}

// replayLoop submits the events marked for replay.
func (e *engine) replayLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.ReplayInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ps, err := e.cfg.DeadLetters.Replays(ctx, e.cfg.Name, 100)
		if err != nil {
			if !failing && ctx.Err() == nil {
				e.cfg.Logger.Warn("cannot read events marked for replay", "consumer", e.cfg.Name, "err", err)
			}
			failing = true
			continue
		}
		failing = false
		for _, p := range ps {
			k := event.DedupKey(p.Event.Source(), p.Event.ID())
			if _, busy := e.replaying.LoadOrStore(k, struct{}{}); busy {
				continue
			}
			e.cfg.Logger.Info("replaying parked event", "consumer", e.cfg.Name, "type", p.Event.Type(), "source", p.Event.Source(), "id", p.Event.ID())
			done := func() { e.replaying.Delete(k) }
			d := &Delivery{Event: p.Event, Key: p.Key, Position: "replay", Ack: done, Release: done}
			if e.Submit(ctx, d) != nil {
				done()
				return
			}
		}
	}
}

// pruneLoop deletes old inbox records.
func (e *engine) pruneLoop(ctx context.Context, p Pruner) {
	t := time.NewTicker(e.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := p.Prune(ctx, e.cfg.Retention)
		if err != nil && ctx.Err() == nil {
			e.cfg.Logger.Warn("cannot prune the inbox", "consumer", e.cfg.Name, "err", err)
		} else if n > 0 {
			e.cfg.Logger.Debug("inbox pruned", "consumer", e.cfg.Name, "rows", n, "older_than", e.cfg.Retention)
		}
	}
}
