package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// DefaultMaxBatch is the most events one Publish call receives.
const DefaultMaxBatch = 1024

// Target is one configured sink with its route.
type Target struct {
	Name  string
	Sink  Sink
	Route Route
	// MaxBatch caps the events per Publish call. Default DefaultMaxBatch.
	MaxBatch int
}

// Hooks observe the fan-out; every field is optional. Hooks are called from
// pipeline goroutines and must not block.
type Hooks struct {
	// Published is called after a batch was handed to a sink.
	Published func(sink string, events []*event.Event)
}

// Fanout routes events to sinks and runs one pipeline goroutine per sink.
//
// Add and Flush are called by the single goroutine that decodes the stream.
// Run starts the pipelines; Close drains them.
type Fanout struct {
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
}

// NewFanout returns a Fanout over targets. logger may be nil.
func NewFanout(targets []Target, logger *slog.Logger, hooks Hooks) (*Fanout, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if len(targets) == 0 {
		return nil, errors.New("sink: no sinks configured")
	}
	f := &Fanout{logger: logger, hooks: hooks, stop: make(chan struct{})}
	seen := map[string]bool{}
	for _, t := range targets {
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
		f.pipes = append(f.pipes, &pipeline{Target: t, signal: make(chan struct{}, 1)})
	}
	return f, nil
}

// Routes returns how many sinks e is routed to.
func (f *Fanout) Routes(e *event.Event) int {
	n := 0
	for _, p := range f.pipes {
		if p.Route.Match(e) {
			n++
		}
	}
	return n
}

// Add queues e for every sink it is routed to. The sinks see it after the next
// Flush. The caller must have attached acknowledgement tracking for exactly
// Routes(e) sinks first.
func (f *Fanout) Add(e *event.Event) {
	for _, p := range f.pipes {
		if p.Route.Match(e) {
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

// Close closes every sink.
func (f *Fanout) Close() error {
	var errs []error
	for _, p := range f.pipes {
		if err := p.Sink.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sink %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
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
	for {
		batch := p.take()
		if batch == nil {
			select {
			case <-p.signal:
				continue
			case <-f.stop:
				if batch = p.take(); batch == nil {
					return nil
				}
			case <-ctx.Done():
				return nil
			}
		}
		if err := p.Sink.Publish(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			f.logger.Error("sink failed", "sink", p.Name, "err", err)
			return fmt.Errorf("sink %s: %w", p.Name, err)
		}
		if f.hooks.Published != nil {
			f.hooks.Published(p.Name, batch)
		}
		p.give(batch)
	}
}
