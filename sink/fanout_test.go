package sink_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// fakeSink is a hand-written Sink; nil function fields do the obvious.
type fakeSink struct {
	publish func(ctx context.Context, events []*event.Event) error
	flush   func(ctx context.Context) error
	close   func() error
}

func (s *fakeSink) Publish(ctx context.Context, events []*event.Event) error {
	if s.publish == nil {
		return nil
	}
	return s.publish(ctx, events)
}

func (s *fakeSink) Flush(ctx context.Context) error {
	if s.flush == nil {
		return nil
	}
	return s.flush(ctx)
}

func (s *fakeSink) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

var _ sink.Sink = (*fakeSink)(nil)

// recordingSink records every batch it is handed (copies, as the slice is
// reused) and acknowledges each event.
type recordingSink struct {
	fakeSink
	mu      sync.Mutex
	batches [][]*event.Event
	got     chan struct{} // one send per event
}

func newRecordingSink() *recordingSink {
	s := &recordingSink{got: make(chan struct{}, 10_000)}
	s.publish = func(_ context.Context, events []*event.Event) error {
		s.mu.Lock()
		s.batches = append(s.batches, append([]*event.Event(nil), events...))
		s.mu.Unlock()
		for _, e := range events {
			e.Ack()
			s.got <- struct{}{}
		}
		return nil
	}
	return s
}

func (s *recordingSink) events() []*event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*event.Event
	for _, b := range s.batches {
		out = append(out, b...)
	}
	return out
}

func (s *recordingSink) batchSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, b := range s.batches {
		out = append(out, len(b))
	}
	return out
}

// waitFor waits until s received n events.
func (s *recordingSink) waitFor(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-s.got:
		case <-time.After(10 * time.Second):
			t.Fatalf("sink received %d of %d events", i, n)
		}
	}
}

type ackCounter struct {
	mu   sync.Mutex
	done int
}

func (a *ackCounter) Done(*event.Event) { a.mu.Lock(); a.done++; a.mu.Unlock() }

func (a *ackCounter) count() int { a.mu.Lock(); defer a.mu.Unlock(); return a.done }

// add tracks e for the sinks it is routed to and queues it, as the pipeline
// does.
func add(f *sink.Fanout, tr event.Tracker, e *event.Event) {
	e.Track(tr, f.Routes(e))
	f.Add(e)
}

// runFanout starts f.Run and returns a function that waits for its result.
func runFanout(t *testing.T, ctx context.Context, f *sink.Fanout) func() error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- f.Run(ctx) }()
	return func() error {
		t.Helper()
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
			return nil
		}
	}
}

func TestFanoutRoutesEvents(t *testing.T) {
	t.Parallel()
	orders, all, invoices := newRecordingSink(), newRecordingSink(), newRecordingSink()
	f, err := sink.NewFanout([]sink.Target{
		{Name: "orders", Sink: orders, Route: sink.Route{AggregateTypes: []string{"order"}}},
		{Name: "all", Sink: all},
		{Name: "invoices", Sink: invoices, Route: sink.Route{Types: []string{"invoice.*"}}},
	}, nil, sink.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := runFanout(t, ctx, f)

	tr := &ackCounter{}
	evs := []*event.Event{
		{ID: "1", Type: "order.created", AggregateType: "order"},
		{ID: "2", Type: "invoice.sent", AggregateType: "invoice"},
		{ID: "3", Type: "user.joined", AggregateType: "user"},
		{ID: "4", Type: "invoice.paid", AggregateType: "order"},
	}
	wantRoutes := []int{2, 2, 1, 3}
	for i, e := range evs {
		if got := f.Routes(e); got != wantRoutes[i] {
			t.Errorf("Routes(%s) = %d, want %d", e.ID, got, wantRoutes[i])
		}
		add(f, tr, e)
	}
	f.Flush()
	orders.waitFor(t, 2)
	all.waitFor(t, 4)
	invoices.waitFor(t, 2)
	f.Stop()
	if err := wait(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	for name, tc := range map[string]struct {
		s    *recordingSink
		want string
	}{
		"orders":   {orders, "1,4"},
		"all":      {all, "1,2,3,4"},
		"invoices": {invoices, "2,4"},
	} {
		if got := ids(tc.s.events()); got != tc.want {
			t.Errorf("sink %s got %s, want %s", name, got, tc.want)
		}
	}
	if got := tr.count(); got != len(evs) {
		t.Errorf("%d events fully acknowledged, want %d", got, len(evs))
	}
}

func ids(evs []*event.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.ID)
	}
	return strings.Join(s, ",")
}

// TestFanoutOrderAndMaxBatch: each sink sees its events in the order they
// were added, in batches of at most MaxBatch, whether the sink is fast or
// slow.
func TestFanoutOrderAndMaxBatch(t *testing.T) {
	t.Parallel()
	fast := newRecordingSink()
	slow := newRecordingSink()
	inner := slow.publish
	slow.publish = func(ctx context.Context, events []*event.Event) error {
		time.Sleep(time.Millisecond)
		return inner(ctx, events)
	}
	var hookMu sync.Mutex
	hooked := map[string]int{}
	f, err := sink.NewFanout([]sink.Target{
		{Name: "fast", Sink: fast, MaxBatch: 7},
		{Name: "slow", Sink: slow, MaxBatch: 3},
	}, nil, sink.Hooks{Published: func(name string, evs []*event.Event) {
		hookMu.Lock()
		hooked[name] += len(evs)
		hookMu.Unlock()
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait := runFanout(t, context.Background(), f)
	const n = 500
	tr := &ackCounter{}
	for i := 0; i < n; i++ {
		add(f, tr, &event.Event{ID: fmt.Sprint(i), Seq: i})
		if i%37 == 0 {
			f.Flush()
		}
	}
	f.Flush()
	fast.waitFor(t, n)
	slow.waitFor(t, n)
	f.Stop()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		s   *recordingSink
		max int
	}{"fast": {fast, 7}, "slow": {slow, 3}} {
		evs := tc.s.events()
		if len(evs) != n {
			t.Errorf("%s: %d events, want %d", name, len(evs), n)
		}
		for i, e := range evs {
			if e.Seq != i {
				t.Errorf("%s: event %d is %d: order not kept", name, i, e.Seq)
				break
			}
		}
		for _, size := range tc.s.batchSizes() {
			if size < 1 || size > tc.max {
				t.Errorf("%s: batch of %d, MaxBatch is %d", name, size, tc.max)
			}
		}
	}
	hookMu.Lock()
	defer hookMu.Unlock()
	if hooked["fast"] != n || hooked["slow"] != n {
		t.Errorf("Published hook saw %v, want %d per sink", hooked, n)
	}
	if got := tr.count(); got != n {
		t.Errorf("%d events fully acknowledged, want %d", got, n)
	}
}

func TestFanoutDefaultMaxBatch(t *testing.T) {
	t.Parallel()
	s := newRecordingSink()
	f, err := sink.NewFanout([]sink.Target{{Name: "s", Sink: s}}, nil, sink.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := sink.DefaultMaxBatch*2 + 5
	tr := &ackCounter{}
	for i := 0; i < n; i++ {
		add(f, tr, &event.Event{Seq: i})
	}
	// Everything is queued before Run starts, so batches are as large as
	// allowed.
	f.Stop()
	if err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	sizes := s.batchSizes()
	if len(sizes) != 3 || sizes[0] != sink.DefaultMaxBatch || sizes[1] != sink.DefaultMaxBatch || sizes[2] != 5 {
		t.Errorf("batch sizes = %v, want [%d %d 5]", sizes, sink.DefaultMaxBatch, sink.DefaultMaxBatch)
	}
}

// TestFanoutStopDrains: events queued (even without a Flush) are all handed
// to their sinks before Run returns after Stop.
func TestFanoutStopDrains(t *testing.T) {
	t.Parallel()
	a, b := newRecordingSink(), newRecordingSink()
	release := make(chan struct{})
	blocking := a.publish
	a.publish = func(ctx context.Context, events []*event.Event) error {
		<-release
		return blocking(ctx, events)
	}
	f, err := sink.NewFanout([]sink.Target{
		{Name: "a", Sink: a, MaxBatch: 4},
		{Name: "b", Sink: b, MaxBatch: 4},
	}, nil, sink.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait := runFanout(t, context.Background(), f)
	tr := &ackCounter{}
	add(f, tr, &event.Event{Seq: 0})
	f.Flush()
	for i := 1; i < 50; i++ { // queued while a's first publish blocks
		add(f, tr, &event.Event{Seq: i})
	}
	f.Stop()
	f.Stop() // idempotent
	close(release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*recordingSink{"a": a, "b": b} {
		evs := s.events()
		if len(evs) != 50 {
			t.Errorf("%s: %d of 50 events handed over before Run returned", name, len(evs))
		}
		for i, e := range evs {
			if e.Seq != i {
				t.Errorf("%s: order not kept at %d", name, i)
				break
			}
		}
	}
}

// TestFanoutStopDrainsIdlePipeline: a pipeline that is idle (waiting for a
// Flush) when Stop comes still hands over what was queued since.
func TestFanoutStopDrainsIdlePipeline(t *testing.T) {
	t.Parallel()
	s := newRecordingSink()
	f, err := sink.NewFanout([]sink.Target{{Name: "s", Sink: s, MaxBatch: 2}}, nil, sink.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait := runFanout(t, context.Background(), f)
	tr := &ackCounter{}
	add(f, tr, &event.Event{Seq: 0})
	f.Flush()
	s.waitFor(t, 1)
	time.Sleep(20 * time.Millisecond) // let the pipeline go idle
	for i := 1; i < 9; i++ {
		add(f, tr, &event.Event{Seq: i}) // no Flush
	}
	f.Stop()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := len(s.events()); got != 9 {
		t.Errorf("%d of 9 events handed over before Run returned", got)
	}
	if got := tr.count(); got != 9 {
		t.Errorf("%d of 9 events acknowledged", got)
	}
}

func TestFanoutContextCancelReturns(t *testing.T) {
	t.Parallel()
	s := &fakeSink{publish: func(ctx context.Context, _ []*event.Event) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	f, err := sink.NewFanout([]sink.Target{{Name: "s", Sink: s}, {Name: "idle", Sink: &fakeSink{}}}, nil, sink.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := runFanout(t, ctx, f)
	add(f, &ackCounter{}, &event.Event{})
	f.Flush()
	cancel()
	if err := wait(); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

func TestFanoutPermanentError(t *testing.T) {
	t.Parallel()
	cause := errors.New("message too large")
	s := &fakeSink{publish: func(_ context.Context, evs []*event.Event) error {
		return fmt.Errorf("kafka: %w", &sink.PermanentError{Sink: "k", EventID: evs[0].ID, Err: cause})
	}}
	f, err := sink.NewFanout([]sink.Target{{Name: "k", Sink: s}}, nil, sink.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait := runFanout(t, context.Background(), f)
	add(f, &ackCounter{}, &event.Event{ID: "big-1"})
	f.Flush()
	err = wait()
	var pe *sink.PermanentError
	if !errors.As(err, &pe) || pe.EventID != "big-1" || pe.Sink != "k" {
		t.Fatalf("Run = %v, want a *sink.PermanentError for big-1", err)
	}
	if !errors.Is(err, cause) || !sink.IsPermanent(err) {
		t.Errorf("Run = %v: does not wrap the cause or is not Permanent", err)
	}
	if !strings.Contains(err.Error(), "sink k") || !strings.Contains(err.Error(), "big-1") {
		t.Errorf("message %q does not name the sink and the event", err)
	}
}

func TestFanoutPermanentErrorWithOtherSinksRunning(t *testing.T) {
	t.Parallel()
	bad := &fakeSink{publish: func(_ context.Context, evs []*event.Event) error {
		return &sink.PermanentError{Sink: "bad", EventID: evs[0].ID, Err: errors.New("rejected")}
	}}
	f, err := sink.NewFanout([]sink.Target{{Name: "bad", Sink: bad}, {Name: "good", Sink: newRecordingSink()}}, nil, sink.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- f.Run(ctx) }()
	add(f, &ackCounter{}, &event.Event{ID: "e1"})
	f.Flush()
	select {
	case err := <-errc:
		if !sink.IsPermanent(err) {
			t.Errorf("Run = %v, want a permanent error", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Run did not return after a sink failed for good while another sink is healthy")
	}
}

func TestNewFanoutErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		targets []sink.Target
		want    string
	}{
		{"no sinks", nil, "no sinks"},
		{"duplicate name", []sink.Target{{Name: "a", Sink: &fakeSink{}}, {Name: "a", Sink: &fakeSink{}}}, `"a"`},
		{"bad route", []sink.Target{{Name: "a", Sink: &fakeSink{}, Route: sink.Route{Types: []string{"["}}}}, "sink a"},
	} {
		if _, err := sink.NewFanout(tc.targets, nil, sink.Hooks{}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewFanout = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestFanoutFlushSinksAndClose(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	var closed []string
	var mu sync.Mutex
	mk := func(name string, flushErr, closeErr error) sink.Target {
		return sink.Target{Name: name, Sink: &fakeSink{
			flush: func(context.Context) error { return flushErr },
			close: func() error { mu.Lock(); closed = append(closed, name); mu.Unlock(); return closeErr },
		}}
	}
	f, err := sink.NewFanout([]sink.Target{mk("a", nil, nil), mk("b", boom, boom), mk("c", nil, nil)}, nil, sink.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.FlushSinks(context.Background()); !errors.Is(err, boom) || !strings.Contains(err.Error(), "sink b") {
		t.Errorf("FlushSinks = %v, want boom naming sink b", err)
	}
	if err := f.Close(); !errors.Is(err, boom) || !strings.Contains(err.Error(), "sink b") {
		t.Errorf("Close = %v, want boom naming sink b", err)
	}
	slices.Sort(closed)
	if strings.Join(closed, ",") != "a,b,c" {
		t.Errorf("closed %v, want every sink closed even after an error", closed)
	}
}

// Readiness counts a batch as pending when the Published hook runs; a sink
// that acknowledges inside Publish must find it counted already.
func TestFanoutPublishedBeforeAck(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	published := map[string]bool{}
	var early []string
	s := &fakeSink{publish: func(_ context.Context, evs []*event.Event) error {
		mu.Lock()
		for _, e := range evs {
			if !published[e.ID] {
				early = append(early, e.ID)
			}
		}
		mu.Unlock()
		for _, e := range evs {
			e.Ack()
		}
		return nil
	}}
	hooks := sink.Hooks{Published: func(_ string, evs []*event.Event) {
		mu.Lock()
		for _, e := range evs {
			published[e.ID] = true
		}
		mu.Unlock()
	}}
	f, err := sink.NewFanout([]sink.Target{{Name: "f", Sink: s}}, nil, hooks, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := runFanout(t, ctx, f)
	acks := &ackCounter{}
	for i := range 100 {
		add(f, acks, &event.Event{ID: fmt.Sprint(i), CommitLSN: uint64(i + 1)})
		if i%7 == 0 {
			f.Flush()
		}
	}
	f.Flush()
	f.Stop()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if acks.count() != 100 || len(early) > 0 {
		t.Fatalf("%d of 100 acknowledged; handed to the sink before the Published hook: %v", acks.count(), early)
	}
}

// A sink whose Close hangs is left behind, named, when the context ends.
func TestFanoutCloseContext(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	defer close(hang)
	closed := make(chan string, 2)
	f, err := sink.NewFanout([]sink.Target{
		{Name: "quick", Sink: &fakeSink{close: func() error { closed <- "quick"; return nil }}},
		{Name: "hung", Sink: &fakeSink{close: func() error { <-hang; return nil }}},
	}, nil, sink.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = f.CloseContext(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "hung not closed") || strings.Contains(err.Error(), "quick") {
		t.Errorf("CloseContext = %v, want the hung sink named", err)
	}
	if got := <-closed; got != "quick" {
		t.Errorf("closed %q", got)
	}
}

// An event whose destination cannot exist blocks the sink under policy block
// without retrying (nothing can change until the template is fixed): the
// sink is not reopened, and Run returns when its context ends.
func TestFanoutInvalidDestinationBlocks(t *testing.T) {
	t.Parallel()
	tm, err := sink.ParseDestination("outbox.{{.AggregateType}}", sink.DestinationRules{Kind: "subject", Separators: "."})
	if err != nil {
		t.Fatal(err)
	}
	var calls, reopens int
	var mu sync.Mutex
	s := &fakeSink{publish: func(_ context.Context, evs []*event.Event) error {
		mu.Lock()
		calls++
		mu.Unlock()
		for _, e := range evs {
			if _, err := tm.Destination(e); err != nil {
				return &sink.PermanentError{Sink: "n", EventID: e.ID, Err: err}
			}
			e.Ack()
		}
		return nil
	}}
	f, err := sink.NewFanout([]sink.Target{{Name: "n", Sink: s, Policy: sink.PolicyBlock,
		Reopen: func(context.Context) (sink.Sink, error) { mu.Lock(); reopens++; mu.Unlock(); return s, nil }}}, nil, sink.Hooks{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := runFanout(t, ctx, f)
	acks := &ackCounter{}
	add(f, acks, &event.Event{ID: "ok", AggregateType: "order", CommitLSN: 1})
	add(f, acks, &event.Event{ID: "no-agg", CommitLSN: 2})
	f.Flush()
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if acks.count() != 1 || calls != 1 || reopens != 0 {
		t.Errorf("acknowledged %d, published %d times, reopened %d times; want 1, 1, 0", acks.count(), calls, reopens)
	}
}

func TestOptionsAck(t *testing.T) {
	t.Parallel()
	var acked []string
	o := sink.Options{Name: "s", Observer: observerFunc(func(name string, e *event.Event) { acked = append(acked, name+":"+e.ID) })}.WithDefaults()
	if o.Logger == nil {
		t.Error("WithDefaults left Logger nil")
	}
	tr := &ackCounter{}
	e := &event.Event{ID: "1"}
	e.Track(tr, 1)
	o.Ack(e)
	if strings.Join(acked, ",") != "s:1" || tr.count() != 1 {
		t.Errorf("observer saw %v, tracker %d; want s:1 and 1", acked, tr.count())
	}
	if (sink.Options{}).WithDefaults().Observer == nil {
		t.Error("WithDefaults left Observer nil")
	}
}

type observerFunc func(string, *event.Event)

func (f observerFunc) Acked(name string, e *event.Event) { f(name, e) }
func (observerFunc) Retried(string, error)               {}
func (observerFunc) Duplicate(string, *event.Event)      {}
