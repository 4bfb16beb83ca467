package handler

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// NewSink returns the constructor of an in-process sink that runs r inside
// outbox-cdc itself, for programs that embed it (outboxcdc.CustomSink.New;
// the CustomSink's Route selects the events). Each event is converted to a
// CloudEvent as the brokers' bindings carry it (with its partitionkey and
// pglsn extensions) and handled with the Consumer's semantics: per-key
// order by aggregate id, Config.Concurrency keys at once, retries, the
// inbox when Config.Store is set, parking when Config.DeadLetters is set.
//
// An event is acknowledged to the relay (sink.Options.Ack) when its
// handler returned nil (under an inbox: when its transaction committed),
// when the store found it handled before, or when it was parked. Until
// then the replication slot does not pass it, so a crash runs it again
// (the inbox skips it if it took effect). Without a dead-letter store an
// event that keeps failing is retried in place, holding its key and the
// slot, as the relay's block policy does.
func NewSink(cfg Config, r *Router) (func(sink.Options) sink.Sink, error) {
	if _, err := newEngine(cfg, r); err != nil {
		return nil, err
	}
	return func(opts sink.Options) sink.Sink {
		opts = opts.WithDefaults()
		c := cfg
		c.Observer = sinkObserver{Observer: cfg.Observer, sink: opts}
		if c.Observer.(sinkObserver).Observer == nil {
			c.Observer = sinkObserver{Observer: NopObserver{}, sink: opts}
		}
		e, _ := newEngine(c, r)
		ctx, cancel := context.WithCancel(context.Background())
		e.start(ctx)
		return &handlerSink{e: e, opts: opts, cancel: cancel, idle: make(chan struct{})}
	}, nil
}

// handlerSink is the sink.Sink NewSink builds.
type handlerSink struct {
	e      *engine
	opts   sink.Options
	cancel context.CancelFunc

	mu     sync.Mutex
	open   int           // events taken and not settled
	idle   chan struct{} // closed and replaced when open drops
	closed bool
}

var _ sink.Sink = (*handlerSink)(nil)

func (s *handlerSink) settle() {
	s.mu.Lock()
	s.open--
	close(s.idle)
	s.idle = make(chan struct{})
	s.mu.Unlock()
}

// Publish implements sink.Sink: it queues the events and returns; it
// blocks while Config.MaxBuffered events are held.
func (s *handlerSink) Publish(ctx context.Context, events []*event.Event) error {
	for _, ev := range events {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return sink.ErrClosed
		}
		s.open++
		s.mu.Unlock()
		ev := ev
		var once sync.Once
		d := &Delivery{
			Event:    FromOutbox(ev),
			Key:      ev.PartitionKey(),
			Position: fmt.Sprintf("%s#%d", event.FormatLSN(ev.CommitLSN), ev.Seq),
			Ack:      func() { once.Do(func() { s.opts.Ack(ev); s.settle() }) },
			Release:  func() { once.Do(s.settle) }, // not acknowledged: the slot holds it
		}
		if err := s.e.Submit(ctx, d); err != nil {
			if errors.Is(err, errStopped) {
				return sink.ErrClosed
			}
			return err
		}
	}
	return nil
}

// Flush implements sink.Sink.
func (s *handlerSink) Flush(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.open == 0 {
			s.mu.Unlock()
			return nil
		}
		ch := s.idle
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close implements sink.Sink: queued events are released unacknowledged,
// running handlers get Config.DrainTimeout to finish.
func (s *handlerSink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.e.stop()
	return nil
}

// sinkObserver also tells the relay's sink observer about retried attempts.
type sinkObserver struct {
	Observer
	sink sink.Options
}

func (o sinkObserver) Failed(consumer, route string, retry bool) {
	o.Observer.Failed(consumer, route, retry)
	if retry {
		o.sink.Observer.Retried(o.sink.Name, errRetried)
	}
}

var errRetried = errors.New("handler failed; retrying")
