package test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	outboxcdc "github.com/outbox-cdc/outbox-cdc"
	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/testhook"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// gateSink takes events and acknowledges them only when opened: a broker that
// withholds its acknowledgements.
type gateSink struct {
	opts sink.Options
	mu   sync.Mutex
	open bool
	held []*event.Event
	got  int
}

func (g *gateSink) Publish(_ context.Context, evs []*event.Event) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.got += len(evs)
	if g.open {
		for _, e := range evs {
			g.opts.Ack(e)
		}
		return nil
	}
	g.held = append(g.held, evs...)
	return nil
}

func (g *gateSink) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = true
	for _, e := range g.held {
		g.opts.Ack(e)
	}
	g.held = nil
}

func (g *gateSink) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.got
}

// custom returns the gate as an in-process sink named name.
func (g *gateSink) custom(name string) outboxcdc.CustomSink {
	return outboxcdc.CustomSink{Name: name, New: func(o sink.Options) sink.Sink { g.opts = o; return g }}
}

func (g *gateSink) Flush(context.Context) error { return nil }
func (g *gateSink) Close() error                { return nil }

// runInProcess runs the application for e's config with extra sinks until
// the returned stop function is called.
func runInProcess(t *testing.T, e *env, opts outboxcdc.Options, env ...string) (stop func() error) {
	t.Helper()
	return runInProcessHooks(t, e, testhook.Hooks{}, opts, env...)
}

// runInProcessHooks is runInProcess with test-only switches.
func runInProcessHooks(t *testing.T, e *env, hooks testhook.Hooks, opts outboxcdc.Options, env ...string) (stop func() error) {
	t.Helper()
	cfg, err := config.Load(e.cfgPath, append(os.Environ(), env...), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := outboxcdc.New(testhook.With(ctx, hooks), cfg, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(60 * time.Second):
				t.Error("outbox-cdc did not stop within 60s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	return stop
}

// Acceptance: a sink that withholds acknowledgements holds the slot; once it
// acknowledges, the slot catches up to the end of the last transaction.
func TestWithheldAcksHoldTheSlot(t *testing.T) {
	e := newEnv(t, "")
	gate := &gateSink{}
	stop := runInProcess(t, e, outboxcdc.Options{Sinks: []outboxcdc.CustomSink{gate.custom("gate")}})
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	// The first transaction starts after this point; the slot may follow
	// the server's WAL up to it, never past it.
	before := e.currentLSN()

	for i := 0; i < 20; i++ {
		e.exec(`INSERT INTO outbox (type, source, aggregate_id, data)
		        SELECT 'gate.test', '/t', 'a' || (g % 3), jsonb_build_object('n', g) FROM generate_series(1, 50) g`)
	}
	end := e.currentLSN()
	waitFor(t, 10*time.Second, "the gate sink to receive 1000 events", func() bool { return gate.count() >= 1000 })
	waitFor(t, 10*time.Second, "the file sink to write 1000 events", func() bool { return e.countLines() >= 1000 })
	// Several status intervals pass; the slot must not move past the
	// unacknowledged events.
	for i := 0; i < 10; i++ {
		time.Sleep(100 * time.Millisecond)
		if c, _ := e.slot(); c > before {
			t.Fatalf("confirmed_flush_lsn moved from %X to %X while the gate sink held every acknowledgement", before, c)
		}
	}
	gate.release()
	waitFor(t, 10*time.Second, "the slot to catch up with the last transaction", func() bool {
		c, _ := e.slot()
		return c >= end
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
