package sink

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
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
)

// DefaultMaxBatch is the most events one Publish call receives.
const DefaultMaxBatch = 1024

// Policy says what a sink does with an event it can never deliver.
type Policy string

// Policies.
const (
	// PolicyBlock (the default) keeps retrying the event: the slot holds and
	// /readyz says why, until the destination accepts it.
	PolicyBlock Policy = "block"
	// PolicyDeadLetter stores the event in the dead-letter table, counts it
	// as acknowledged by this sink, and goes on.
	PolicyDeadLetter Policy = "dead-letter"
)

// DeadLetterer stores an event a sink cannot take.
type DeadLetterer interface {
	PutEvent(ctx context.Context, sink string, e *event.Event, cause error, attempts int, firstFailed time.Time) error
}

// Target is one configured sink with its route.
type Target struct {
	Name  string
	Sink  Sink
	Route Route
	// MaxBatch caps the events per Publish call. Default DefaultMaxBatch.
	MaxBatch int
	// Index is set by NewFanout to the target's position in the list; the
	// sink's Options.Index must be that position.
	Index int
	// Reopen builds a fresh sink after a permanent failure; nil makes a
	// permanent failure stop the fan-out.
	Reopen func(context.Context) (Sink, error)
	// Policy for events the sink can never deliver. Default PolicyBlock.
	Policy Policy
	// Backoff spaces retries of a blocked event.
	Backoff retry.Backoff
	// Observer receives retries; nil ignores them.
	Observer Observer
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

// Fanout routes events to sinks and runs one pipeline goroutine per sink.
//
// Add and Flush are called by the single goroutine that decodes the stream.
// Run starts the pipelines; Close drains them.
type Fanout struct {
	dead     DeadLetterer
	stop     chan struct{}
	stopOnce sync.Once
	pipes    []*pipeline
	logger   *slog.Logger
	hooks    Hooks
}

type pipeline struct {
	Target
	mu     sync.Mutex
	queue  []*event.Event
	spare  []*event.Event
	signal chan struct{}
	added  bool // events added since the last Flush; reader goroutine only

	inflight []*event.Event // handed to the sink, maybe not acknowledged; pipeline goroutine only

	skipBelow     uint64        // events committed below this were acknowledged before a restart
	lastCommitted atomic.Uint64 // commit LSN of the newest transaction fully queued
	progress      atomic.Uint64 // every routed event committed below this is acknowledged
}

// NewFanout returns a Fanout over targets. logger may be nil; dead may be nil
// when no target uses PolicyDeadLetter.
func NewFanout(targets []Target, logger *slog.Logger, hooks Hooks, dead DeadLetterer) (*Fanout, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if len(targets) == 0 {
		return nil, errors.New("sink: no sinks configured")
	}
	f := &Fanout{logger: logger, hooks: hooks, dead: dead, stop: make(chan struct{})}
	if len(targets) > 64 {
		return nil, errors.New("sink: at most 64 sinks")
	}
	seen := map[string]bool{}
	for i, t := range targets {
		t.Index = i
		if seen[t.Name] {
			return nil, fmt.Errorf("sink: two sinks are named %q", t.Name)
		}
		seen[t.Name] = true
		if err := t.Route.Validate(); err != nil {
			return nil, fmt.Errorf("sink %s: %w", t.Name, err)
		}
		if t.MaxBatch <= 0 {
			t.MaxBatch = DefaultMaxBatch
		}
		if t.Policy == "" {
			t.Policy = PolicyBlock
		}
		if t.Policy != PolicyBlock && t.Policy != PolicyDeadLetter {
			return nil, fmt.Errorf("sink %s: policy %q: want block or dead-letter", t.Name, t.Policy)
		}
		if t.Policy == PolicyDeadLetter && dead == nil {
			return nil, fmt.Errorf("sink %s: policy dead-letter needs the dead-letter store", t.Name)
		}
		if t.Observer == nil {
			t.Observer = NopObserver{}
		}
		if ts, ok := t.Sink.(Templated); ok {
			for _, tm := range ts.Templates() {
				if err := tm.Probe(); err != nil {
					logger.Warn("some events will get no valid destination from this sink; they follow its policy",
						"sink", t.Name, "policy", string(t.Policy), "err", err)
				}
			}
		}
		f.pipes = append(f.pipes, &pipeline{Target: t, signal: make(chan struct{}, 1)})
	}
	return f, nil
}

// Routes returns how many sinks e is routed to.
func (f *Fanout) Routes(e *event.Event) int {
	n := 0
	for _, p := range f.pipes {
		if p.routes(e) {
			n++
		}
	}
	return n
}

// routes reports whether e goes to p: its route matches, and p did not
// acknowledge it before a restart.
func (p *pipeline) routes(e *event.Event) bool {
	return e.CommitLSN >= p.skipBelow && p.Route.Match(e)
}

// Resume tells the fan-out how far each sink had acknowledged before a
// restart (see Progress): events committed below are not sent to it again.
// Call it before the first Add.
func (f *Fanout) Resume(pos map[string]uint64) {
	for _, p := range f.pipes {
		p.skipBelow = pos[p.Name]
		p.progress.Store(pos[p.Name])
	}
}

// Committed tells the fan-out that every event of the transaction with this
// commit LSN has been added. Called by the reader after the last Add of a
// transaction.
func (f *Fanout) Committed(commitLSN uint64) {
	for _, p := range f.pipes {
		p.lastCommitted.Store(commitLSN)
	}
}

// Progress returns, per sink, a position below which every event routed to
// it has been acknowledged by it. Safe for concurrent use; positions never go
// back.
func (f *Fanout) Progress() map[string]uint64 {
	out := make(map[string]uint64, len(f.pipes))
	for _, p := range f.pipes {
		out[p.Name] = p.progress.Load()
	}
	return out
}

// Add queues e for every sink it is routed to. The sinks see it after the next
// Flush. The caller must have attached acknowledgement tracking for exactly
// Routes(e) sinks first.
func (f *Fanout) Add(e *event.Event) {
	for _, p := range f.pipes {
		if p.routes(e) {
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
			select {
			case p.signal <- struct{}{}:
			default:
			}
		}
	}
}

// Run runs every pipeline until Stop is called, then hands every queued event
// to its sink before returning; when ctx is done it returns at once. It returns
// the first pipeline error: a sink that failed for good (see Permanent).
func (f *Fanout) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(f.pipes))
	var wg sync.WaitGroup
	for _, p := range f.pipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.run(ctx, f); err != nil {
				errc <- err
				cancel() // one sink failed for good: stop the others too
			}
		}()
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
		if err := p.Sink.Flush(ctx); err != nil {
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Sink.Close(); err != nil {
				errs[i] = fmt.Errorf("sink %s: %w", p.Name, err)
			}
			done[i].Store(true)
		}()
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
		return fmt.Errorf("sink: %s not closed: %w", strings.Join(open, ", "), ctx.Err())
	}
}

func (p *pipeline) take() []*event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.queue)
	if n == 0 {
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
			p.advance()
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
				p.advance()
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
		p.advance()
		// Count the batch as pending before the sink sees it: a sink may
		// acknowledge inside Publish.
		if f.hooks.Published != nil {
			f.hooks.Published(p.Name, batch)
		}
		err := p.Sink.Publish(ctx, batch)
		p.give(batch)
		if err != nil {
			if err := p.failed(ctx, f, err); err != nil {
				return err
			}
		}
	}
}

// advance recomputes the sink's progress: the lowest commit LSN among the
// events queued or in flight for it, or past the newest transaction fully
// queued when there are none. Called on the pipeline goroutine after prune.
func (p *pipeline) advance() {
	low := p.lastCommitted.Load() + 1 // read first: its events are all queued by now
	p.mu.Lock()
	if len(p.queue) > 0 {
		low = min(low, p.queue[0].CommitLSN)
	}
	p.mu.Unlock()
	for _, e := range p.inflight {
		if !e.AckedFor(p.Index) {
			low = min(low, e.CommitLSN)
			break
		}
	}
	if low > p.progress.Load() && low > 1 {
		p.progress.Store(low)
	}
}

// prune drops the events this sink acknowledged from inflight: from the
// front always, and everywhere once the list is long (a sink acknowledging
// out of order must not grow it past the window).
func (p *pipeline) prune() {
	if len(p.inflight) > 4*p.MaxBatch {
		p.inflight = slices.DeleteFunc(p.inflight, func(e *event.Event) bool { return e.AckedFor(p.Index) })
		return
	}
	i := 0
	for i < len(p.inflight) && p.inflight[i].AckedFor(p.Index) {
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
	err := p.Sink.Flush(fctx)
	cancel()
	if err == nil || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return nil
	}
	return p.failed(ctx, f, err)
}

// failed handles an error from the sink. A permanent failure of one event is
// resolved by the target's policy (store it as a dead letter, or block and
// retry it), then the sink is reopened and sent, in order, every event it has
// not acknowledged. Anything else stops the fan-out.
func (p *pipeline) failed(ctx context.Context, f *Fanout, err error) error {
	attempts, first := 0, time.Now()
	for {
		if ctx.Err() != nil {
			return nil
		}
		var perr *PermanentError
		if !errors.As(err, &perr) || p.Reopen == nil {
			f.logger.Error("sink failed", "sink", p.Name, "err", err)
			return fmt.Errorf("sink %s: %w", p.Name, err)
		}
		p.prune()
		var bad *event.Event
		for _, e := range p.inflight {
			if e.ID == perr.EventID && !e.AckedFor(p.Index) {
				bad = e
				break
			}
		}
		if bad == nil {
			f.logger.Error("sink failed on an event it was not given", "sink", p.Name, "event", perr.EventID, "err", err)
			return fmt.Errorf("sink %s: %w", p.Name, err)
		}
		attempts++
		switch {
		case p.Policy == PolicyDeadLetter && f.dead != nil:
			for try := 1; ; try++ {
				derr := f.dead.PutEvent(ctx, p.Name, bad, perr.Err, attempts, first)
				if derr == nil {
					if try > 1 {
						f.logger.Info("dead-letter store reachable again", "sink", p.Name, "event", bad.ID, "failed_attempts", try-1)
					}
					break
				}
				if try == 1 {
					f.logger.Warn("cannot store dead letter; retrying", "sink", p.Name, "event", bad.ID, "err", derr)
				}
				p.Observer.Retried(p.Name, derr)
				if (retry.Backoff{}).Sleep(ctx, try) != nil {
					return nil
				}
			}
			f.logger.Warn("event stored as a dead letter", "sink", p.Name, "event", bad.ID, "err", perr.Err)
			if f.hooks.DeadLettered != nil {
				f.hooks.DeadLettered(p.Name, bad)
			}
			bad.AckFor(p.Index)
			attempts, first = 0, time.Now()
		case errors.Is(perr, ErrInvalidDestination):
			// Retrying cannot help: the event's own fields give a
			// destination that cannot exist. Hold it, and the slot, until
			// the stop; one line says so.
			f.logger.Error("sink blocked: an event has no valid destination; it stays blocked until its template is fixed and outbox-cdc restarted (policy block)",
				"sink", p.Name, "event", bad.ID, "err", perr.Err)
			p.Observer.Retried(p.Name, err)
			<-ctx.Done()
			return nil
		default:
			if attempts == 1 {
				f.logger.Error("sink blocked: an event cannot be delivered; retrying it (policy block)", "sink", p.Name, "event", bad.ID, "err", perr.Err)
			}
			p.Observer.Retried(p.Name, err)
			if p.Backoff.Sleep(ctx, attempts) != nil {
				return nil
			}
		}
		// Start over with a fresh sink: it reads the destination's limits
		// again (a raised limit lets a blocked event through).
		p.Sink.Close()
		for try := 1; ; try++ {
			s, oerr := p.Reopen(ctx)
			if oerr == nil {
				p.Sink = s
				break
			}
			p.Observer.Retried(p.Name, oerr)
			f.logger.Warn("cannot reopen sink; retrying", "sink", p.Name, "err", oerr)
			if p.Backoff.Sleep(ctx, try) != nil {
				return nil
			}
		}
		p.prune()
		resend := slices.Clone(p.inflight)
		resend = slices.DeleteFunc(resend, func(e *event.Event) bool { return e.AckedFor(p.Index) })
		if len(resend) == 0 {
			return nil
		}
		if err = p.Sink.Publish(ctx, resend); err == nil {
			if attempts > 0 {
				f.logger.Info("sink unblocked", "sink", p.Name)
			}
			return nil
		}
	}
}
