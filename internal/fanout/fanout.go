package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/internal/dlq"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// DeadLetterer stores an event a sink cannot take.
type DeadLetterer interface {
	PutEvent(ctx context.Context, sink string, e *event.Event, cause error, attempts int, firstFailed time.Time) error
}

// Target is one configured sink with its route.
type Target struct {
	Name  string
	Route sink.Route
	// Open builds the sink from opts: its Name, the Config's Logger, an
	// Observer that feeds the Config's, and its acknowledgement handle
	// (Ack), bound to this target. New calls it once; with Reopen, the
	// fan-out calls it again after a permanent failure. Required.
	Open func(ctx context.Context, opts sink.Options) (sink.Sink, error)
	// Reopen makes the fan-out build a fresh sink with Open after a
	// permanent failure, once the policy resolved the failed event, and
	// send it, in order, every event the old one had not acknowledged.
	// Without it a permanent failure stops the fan-out. Default false.
	Reopen bool
	// MaxBatch caps the events per Publish call. Default
	// sink.DefaultMaxBatch.
	MaxBatch int
	// Policy for events the sink can never deliver. Default
	// sink.PolicyBlock.
	Policy sink.Policy
	// Backoff spaces retries of a blocked event and of a failed reopen.
	// The zero value takes retry.Backoff's defaults.
	Backoff retry.Backoff
}

// Hooks observe the fan-out; every field is optional. Hooks are called from
// pipeline goroutines and must not block.
type Hooks struct {
	// Published is called with each batch right before it is handed to a
	// sink, so before the sink can acknowledge any of it.
	Published func(sink string, events []*event.Event)
	// DeadLettered is called after an event was stored as a dead letter: the
	// sink will not acknowledge it, and it counts as done for the sink.
	DeadLettered func(sink string, e *event.Event)
}

// Config configures a Fanout.
type Config struct {
	// Targets are the sinks, at least one, each under its own name.
	Targets []Target
	// Checkpoint records the acknowledgements. New registers every target
	// with it (checkpoint.AddSink), so New must come before the
	// checkpoint's first transaction. Required.
	Checkpoint *checkpoint.Checkpoint
	// Logger receives one line per state change; nil discards.
	Logger *slog.Logger
	// Observer receives every sink's metrics signals; nil ignores them.
	Observer sink.Observer
	// Hooks observe the pipelines.
	Hooks Hooks
	// Dead stores the events of targets with sink.PolicyDeadLetter;
	// required when one has it.
	Dead DeadLetterer
}

// Fanout routes events to sinks and runs one pipeline goroutine per sink.
//
// Route, Add and Flush are called by the single goroutine that decodes the
// stream. Run starts the pipelines; Stop drains them; Close closes the
// sinks.
type Fanout struct {
	dead     DeadLetterer
	stop     chan struct{}
	stopOnce sync.Once
	pipes    []*pipeline
	byName   map[string]*pipeline
	logger   *slog.Logger
	hooks    Hooks
}

type pipeline struct {
	Target
	acks *checkpoint.Sink
	obs  *observer
	opts sink.Options // what Open is called with
	s    sink.Sink    // pipeline goroutine; Close after Run returned

	mu     sync.Mutex // guards queue, spare and paused
	queue  []*event.Event
	spare  []*event.Event
	paused bool
	signal chan struct{}
	added  bool // events added since the last Flush; reader goroutine only

	inflight []*event.Event // handed to the sink, maybe not acknowledged; pipeline goroutine only
}

// New opens every target's sink and returns a Fanout over them. When a sink
// cannot be opened, the ones opened already are closed and the error is
// returned.
func New(ctx context.Context, cfg Config) (*Fanout, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Checkpoint == nil {
		return nil, errors.New("fanout: Config.Checkpoint is required")
	}
	if len(cfg.Targets) == 0 {
		return nil, errors.New("fanout: no sinks configured")
	}
	if len(cfg.Targets) > checkpoint.MaxSinks {
		return nil, fmt.Errorf("fanout: at most %d sinks", checkpoint.MaxSinks)
	}
	var base sink.Observer = sink.NopObserver{}
	if cfg.Observer != nil {
		base = cfg.Observer
	}
	f := &Fanout{logger: logger, hooks: cfg.Hooks, dead: cfg.Dead, stop: make(chan struct{}), byName: map[string]*pipeline{}}
	for _, t := range cfg.Targets {
		if _, dup := f.byName[t.Name]; dup {
			return nil, fmt.Errorf("fanout: two sinks are named %q", t.Name)
		}
		if err := t.Route.Validate(); err != nil {
			return nil, fmt.Errorf("sink %s: %w", t.Name, err)
		}
		if t.Open == nil {
			return nil, fmt.Errorf("sink %s: fanout: Target.Open is required", t.Name)
		}
		if t.MaxBatch <= 0 {
			t.MaxBatch = sink.DefaultMaxBatch
		}
		if t.Policy == "" {
			t.Policy = sink.PolicyBlock
		}
		if t.Policy != sink.PolicyBlock && t.Policy != sink.PolicyDeadLetter {
			return nil, fmt.Errorf("sink %s: policy %q: want block or dead-letter", t.Name, t.Policy)
		}
		if t.Policy == sink.PolicyDeadLetter && cfg.Dead == nil {
			return nil, fmt.Errorf("sink %s: policy dead-letter needs the dead-letter store", t.Name)
		}
		acks, err := cfg.Checkpoint.AddSink(t.Name)
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", t.Name, err)
		}
		p := &pipeline{Target: t, acks: acks, obs: &observer{Observer: base}, signal: make(chan struct{}, 1)}
		p.opts = sink.Options{Name: t.Name, Logger: logger, Observer: p.obs, Ack: p.ack}
		f.pipes = append(f.pipes, p)
		f.byName[t.Name] = p
	}
	for i, p := range f.pipes {
		s, err := p.Open(ctx, p.opts)
		if err != nil {
			for _, q := range f.pipes[:i] {
				q.s.Close()
			}
			return nil, err
		}
		p.s = s
		if ts, ok := s.(sink.Templated); ok {
			for _, tm := range ts.Templates() {
				if err := tm.Probe(); err != nil {
					logger.Warn("some events will get no valid destination from this sink; they follow its policy",
						"sink", p.Name, "policy", string(p.Policy), "err", err)
				}
			}
		}
	}
	return f, nil
}

// ack is the sink's acknowledgement handle (sink.Options.Ack).
func (p *pipeline) ack(e *event.Event) {
	if !p.acks.Owes(e) {
		return // acknowledged already, or never routed here: never count a sink twice
	}
	p.obs.Acked(p.Name, e)
	p.acks.Ack(e)
}

// Route returns the set of sinks (checkpoint.Sink bits) whose route matches
// e.
func (f *Fanout) Route(e *event.Event) uint64 {
	var routes uint64
	for _, p := range f.pipes {
		if p.Route.Match(e) {
			routes |= p.acks.Bit()
		}
	}
	return routes
}

// Add queues e for every sink in routes, the set checkpoint.Add returned for
// it. The sinks see it after the next Flush.
func (f *Fanout) Add(e *event.Event, routes uint64) {
	for _, p := range f.pipes {
		if routes&p.acks.Bit() != 0 {
			p.mu.Lock()
			p.queue = append(p.queue, e)
			p.mu.Unlock()
			p.added = true
		}
	}
}

// Flush wakes the pipelines that have new events. It never blocks.
func (f *Fanout) Flush() {
	for _, p := range f.pipes {
		if p.added {
			p.added = false
			p.wake()
		}
	}
}

func (p *pipeline) wake() {
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// Run runs every pipeline until Stop is called, then hands every queued event
// to its sink (a paused sink's stay queued) before returning; when ctx is done
// it returns at once. It returns the first pipeline error: a sink that failed
// for good.
func (f *Fanout) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(f.pipes))
	var wg sync.WaitGroup
	for _, p := range f.pipes {
		wg.Go(func() {
			if err := p.run(ctx, f); err != nil {
				errc <- err
				cancel() // one sink failed for good: stop the others too
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// Stop asks the pipelines to hand what is queued to their sinks and return.
// It does not wait; Run returns when they are done. Stop is idempotent.
func (f *Fanout) Stop() { f.stopOnce.Do(func() { close(f.stop) }) }

// FlushSinks blocks until every sink acknowledged what it was given, or ctx is
// done.
func (f *Fanout) FlushSinks(ctx context.Context) error {
	var errs []error
	for _, p := range f.pipes {
		if err := p.s.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("sink %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Close closes every sink. Call it after Run returned.
func (f *Fanout) Close() error { return f.CloseContext(context.Background()) }

// CloseContext closes every sink, all at once, and returns when they are
// closed or when ctx is done, whichever comes first: a sink whose Close
// hangs (a broker that does not answer) is left behind, named in the error,
// so that a shutdown keeps its time budget. Call it after Run returned.
func (f *Fanout) CloseContext(ctx context.Context) error {
	errs := make([]error, len(f.pipes))
	done := make([]atomic.Bool, len(f.pipes))
	var wg sync.WaitGroup
	for i, p := range f.pipes {
		wg.Go(func() {
			if err := p.s.Close(); err != nil {
				errs[i] = fmt.Errorf("sink %s: %w", p.Name, err)
			}
			done[i].Store(true)
		})
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	select {
	case <-all:
		return errors.Join(errs...)
	case <-ctx.Done():
		var open []string
		for i, p := range f.pipes {
			if !done[i].Load() {
				open = append(open, p.Name)
			}
		}
		return fmt.Errorf("fanout: sink %s not closed: %w", strings.Join(open, ", "), ctx.Err())
	}
}

// take returns the next batch, or nil when nothing is queued or the sink is
// paused.
func (p *pipeline) take() []*event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.queue)
	if n == 0 || p.paused {
		return nil
	}
	if n > p.MaxBatch {
		batch := append(p.spare[:0], p.queue[:p.MaxBatch]...)
		p.spare = nil
		rest := copy(p.queue, p.queue[p.MaxBatch:])
		clear(p.queue[rest:])
		p.queue = p.queue[:rest]
		return batch
	}
	batch := p.queue
	p.queue = p.spare[:0]
	p.spare = nil
	return batch
}

func (p *pipeline) give(batch []*event.Event) {
	clear(batch)
	p.mu.Lock()
	if cap(batch) <= 4*p.MaxBatch {
		p.spare = batch[:0]
	}
	p.mu.Unlock()
}

func (p *pipeline) run(ctx context.Context, f *Fanout) error {
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		batch := p.take()
		if batch == nil {
			// With events outstanding, look for a failure the sink holds
			// until its next call: it must not wait for more traffic.
			p.prune()
			var probe <-chan time.Time
			if len(p.inflight) > 0 {
				idle.Reset(time.Second)
				probe = idle.C
			}
			select {
			case <-p.signal:
				continue
			case <-probe:
				p.prune()
				if err := p.probe(ctx, f); err != nil {
					return err
				}
				continue
			case <-f.stop:
				if batch = p.take(); batch == nil {
					return nil
				}
			case <-ctx.Done():
				return nil
			}
		}
		p.prune()
		p.inflight = append(p.inflight, batch...)
		// Count the batch as pending before the sink sees it: a sink may
		// acknowledge inside Publish.
		if f.hooks.Published != nil {
			f.hooks.Published(p.Name, batch)
		}
		err := p.s.Publish(ctx, batch)
		p.give(batch)
		if err != nil {
			if err := p.failed(ctx, f, err); err != nil {
				return err
			}
		}
	}
}

// acked reports whether the sink acknowledged e (or e was dead-lettered for
// it).
func (p *pipeline) acked(e *event.Event) bool { return !p.acks.Owes(e) }

// prune drops the events this sink acknowledged from inflight: from the
// front always, and everywhere once the list is long (a sink acknowledging
// out of order must not grow it past the window).
func (p *pipeline) prune() {
	if len(p.inflight) > 4*p.MaxBatch {
		p.inflight = slices.DeleteFunc(p.inflight, p.acked)
		return
	}
	i := 0
	for i < len(p.inflight) && p.acked(p.inflight[i]) {
		i++
	}
	if i == 0 {
		return
	}
	n := copy(p.inflight, p.inflight[i:])
	clear(p.inflight[n:])
	p.inflight = p.inflight[:n]
	if n == 0 && cap(p.inflight) > 4*p.MaxBatch {
		p.inflight = nil
	}
}

// probe asks an idle sink with events outstanding whether it failed.
func (p *pipeline) probe(ctx context.Context, f *Fanout) error {
	fctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := p.s.Flush(fctx)
	cancel()
	if err == nil || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return nil
	}
	return p.failed(ctx, f, err)
}

// failed handles an error from the sink. A permanent failure of one event (a
// *sink.PermanentError) is resolved by the target's policy (store it as a
// dead letter, or block and retry it), then the sink is reopened and sent,
// in order, every event it has not acknowledged. Anything else stops the
// fan-out.
func (p *pipeline) failed(ctx context.Context, f *Fanout, err error) error {
	attempts, first := 0, time.Now()
	for {
		if ctx.Err() != nil {
			return nil
		}
		var perr *sink.PermanentError
		if !errors.As(err, &perr) || !p.Reopen {
			f.logger.Error("sink failed", "sink", p.Name, "err", err)
			return fmt.Errorf("sink %s: %w", p.Name, err)
		}
		p.prune()
		var bad *event.Event
		for _, e := range p.inflight {
			if e.ID == perr.EventID && !p.acked(e) {
				bad = e
				break
			}
		}
		if bad == nil {
			f.logger.Error("sink failed on an event it was not given", "sink", p.Name, "event", perr.EventID, "err", err)
			return fmt.Errorf("sink %s: %w", p.Name, err)
		}
		attempts++
		p.obs.failing(err)
		switch {
		case p.Policy == sink.PolicyDeadLetter && f.dead != nil:
			put := func(ctx context.Context) error { return f.dead.PutEvent(ctx, p.Name, bad, perr.Err, attempts, first) }
			retried := func(derr error) { p.obs.Retried(p.Name, derr) }
			if dlq.Keep(ctx, f.logger, retried, put, "sink", p.Name, "event", bad.ID) != nil {
				return nil
			}
			f.logger.Warn("event stored as a dead letter", "sink", p.Name, "event", bad.ID, "err", perr.Err)
			if f.hooks.DeadLettered != nil {
				f.hooks.DeadLettered(p.Name, bad)
			}
			p.acks.Ack(bad) // done for this sink, without an acknowledgement from it
			attempts, first = 0, time.Now()
		case errors.Is(perr, sink.ErrInvalidDestination):
			// Retrying cannot help: the event's own fields give a
			// destination that cannot exist. Hold it, and the slot, until
			// the stop; one line says so.
			f.logger.Error("sink blocked: an event has no valid destination; it stays blocked until its template is fixed and outbox-cdc restarted (policy block)",
				"sink", p.Name, "event", bad.ID, "err", perr.Err)
			p.obs.Retried(p.Name, err)
			<-ctx.Done()
			return nil
		default:
			if attempts == 1 {
				f.logger.Error("sink blocked: an event cannot be delivered; retrying it (policy block)", "sink", p.Name, "event", bad.ID, "err", perr.Err)
			}
			p.obs.Retried(p.Name, err)
			if p.Backoff.Sleep(ctx, attempts) != nil {
				return nil
			}
		}
		// Start over with a fresh sink: it reads the destination's limits
		// again (a raised limit lets a blocked event through).
		p.s.Close()
		for try := 1; ; try++ {
			s, oerr := p.Open(ctx, p.opts)
			if oerr == nil {
				p.s = s
				break
			}
			p.obs.Retried(p.Name, oerr)
			f.logger.Warn("cannot reopen sink; retrying", "sink", p.Name, "err", oerr)
			if p.Backoff.Sleep(ctx, try) != nil {
				return nil
			}
		}
		p.prune()
		resend := slices.Clone(p.inflight)
		resend = slices.DeleteFunc(resend, p.acked)
		if len(resend) == 0 {
			return nil
		}
		if err = p.s.Publish(ctx, resend); err == nil {
			if attempts > 0 {
				f.logger.Info("sink unblocked", "sink", p.Name)
			}
			return nil
		}
	}
}
