package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// msg is the fake broker's message.
type msg struct {
	id   string
	prev string // the message sent before it, as Prev tells
	t    Ticket
}

// fake is an Adapter whose broker is a function: send decides the outcome
// of each message (nil: stored at once; errAsync: settled later by the
// test).
type fake struct {
	mu       sync.Mutex
	send     func(m *msg) error
	encode   func(e *event.Event) error
	sent     []string // every send, in order
	pending  []Ticket // sends held for the test to settle
	recover  func(cause error, p *Pending[msg]) error
	released int
}

var errAsync = errors.New("held")

func (f *fake) Encode(_ context.Context, e *event.Event, m *msg) error {
	if f.encode != nil {
		if err := f.encode(e); err != nil {
			return err
		}
	}
	m.id = e.ID
	return nil
}

func (f *fake) Send(_ context.Context, b *Batch[msg]) {
	prev := ""
	if p := b.Prev(); p != nil {
		prev = p.id
	}
	for i := range b.Len() {
		m := b.Msg(i)
		m.prev, m.t = prev, b.Ticket(i)
		prev = m.id
		f.mu.Lock()
		f.sent = append(f.sent, m.id)
		send := f.send
		f.mu.Unlock()
		var err error
		if send != nil {
			err = send(m)
		}
		if err == errAsync {
			f.mu.Lock()
			f.pending = append(f.pending, m.t)
			f.mu.Unlock()
			continue
		}
		b.Settle(i, err)
	}
}

func (f *fake) Release(m *msg) {
	f.mu.Lock()
	f.released++
	f.mu.Unlock()
	*m = msg{}
}

func (f *fake) Recover(_ context.Context, cause error, p *Pending[msg]) error {
	if f.recover != nil {
		return f.recover(cause, p)
	}
	return nil
}

func (f *fake) takePending() []Ticket {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pending
	f.pending = nil
	return p
}

func (f *fake) sends() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

// acks records acknowledgements.
type acks struct {
	mu      sync.Mutex
	order   []string
	count   map[string]int
	retried int
}

func (a *acks) ack(e *event.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.count == nil {
		a.count = map[string]int{}
	}
	a.count[e.ID]++
	a.order = append(a.order, e.ID)
}

func (a *acks) Acked(string, *event.Event)     {}
func (a *acks) Duplicate(string, *event.Event) {}
func (a *acks) Retried(string, error) {
	a.mu.Lock()
	a.retried++
	a.mu.Unlock()
}

func (a *acks) snapshot() ([]string, map[string]int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.order), a.count, a.retried
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func events(n int) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = &event.Event{ID: fmt.Sprintf("e%03d", i)}
	}
	return evs
}

func ids(evs []*event.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func newEngine(t *testing.T, f *fake, cfg Config) (*Engine[msg], *acks, *logBuf) {
	t.Helper()
	a := &acks{}
	logs := &logBuf{}
	cfg.Name = "t"
	cfg.Ack = a.ack
	cfg.Observer = a
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if cfg.Retry == (retry.Backoff{}) {
		cfg.Retry = retry.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}
	}
	e := New(cfg, f)
	t.Cleanup(func() { _ = e.Close(context.Background(), nil) })
	return e, a, logs
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// An ordered engine acknowledges in Publish order whatever order the broker
// confirms in, each event once, and frees every message.
func TestOrderedAcksInOrder(t *testing.T) {
	t.Parallel()
	f := &fake{send: func(*msg) error { return errAsync }}
	e, a, _ := newEngine(t, f, Config{MaxInFlight: 64, MaxBatch: 7, Ordered: true})
	evs := events(50)
	if err := e.Publish(ctxT(t), evs); err != nil {
		t.Fatal(err)
	}
	var held []Ticket
	for len(held) < len(evs) {
		held = append(held, f.takePending()...)
		time.Sleep(time.Millisecond)
	}
	// Settle from the back; nothing may be acknowledged before the first.
	for i := len(held) - 1; i >= 1; i-- {
		e.Settle(held[i], nil)
	}
	time.Sleep(20 * time.Millisecond)
	if order, _, _ := a.snapshot(); len(order) != 0 {
		t.Fatalf("%d acknowledged before the first event was stored", len(order))
	}
	e.Settle(held[0], nil)
	e.Settle(held[0], nil) // a second settlement is ignored
	if err := e.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	order, count, _ := a.snapshot()
	if !slices.Equal(order, ids(evs)) {
		t.Fatalf("acknowledged %v, want %v", order, ids(evs))
	}
	for id, n := range count {
		if n != 1 {
			t.Fatalf("%s acknowledged %d times", id, n)
		}
	}
	if e.InFlight() != 0 || f.released != len(evs) {
		t.Fatalf("in flight %d, released %d", e.InFlight(), f.released)
	}
}

// Publish blocks at MaxInFlight until ctx is done, having taken the events
// that fit; Flush waits likewise.
func TestWindowBound(t *testing.T) {
	t.Parallel()
	f := &fake{send: func(*msg) error { return errAsync }}
	e, a, _ := newEngine(t, f, Config{MaxInFlight: 10, Ordered: true})
	evs := events(15)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.Publish(ctx, evs); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish over the window: %v, want DeadlineExceeded", err)
	}
	if n := e.InFlight(); n != 10 {
		t.Fatalf("%d in flight, want 10", n)
	}
	if err := e.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush: %v", err)
	}
	f.mu.Lock()
	f.send = nil
	f.mu.Unlock()
	for _, tk := range f.takePending() {
		e.Settle(tk, nil)
	}
	if err := e.Publish(ctxT(t), evs[10:]); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if order, _, _ := a.snapshot(); !slices.Equal(order, ids(evs)) {
		t.Fatalf("acknowledged %v", order)
	}
}

// A transient failure resends, in order, the failed event and every later
// one not stored, after all sent ones settled; one round, one Retried, one
// line down and one up.
func TestTransientResendInOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	failed := map[string]bool{}
	errDown := errors.New("connection lost")
	f := &fake{}
	f.send = func(m *msg) error {
		mu.Lock()
		defer mu.Unlock()
		// First sends of e005 and e007 fail; e006 is stored.
		if (m.id == "e005" || m.id == "e007") && !failed[m.id] {
			failed[m.id] = true
			return errDown
		}
		return nil
	}
	e, a, logs := newEngine(t, f, Config{MaxInFlight: 64, Ordered: true})
	evs := events(10)
	if err := e.Publish(ctxT(t), evs); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	order, _, retried := a.snapshot()
	if !slices.Equal(order, ids(evs)) {
		t.Fatalf("acknowledged %v", order)
	}
	want := append(ids(evs), "e005", "e007")
	if got := f.sends(); !slices.Equal(got, want) {
		t.Fatalf("sends %v, want %v (only the failed ones resent)", got, want)
	}
	if retried != 1 || logs.count("cannot deliver") != 1 || logs.count("recovered") != 1 {
		t.Fatalf("%d retries, logs:\n%s", retried, logs.b.String())
	}
}

// The engine waits for every message in flight to settle before it resends,
// so nothing sent earlier can land after a resend.
func TestResendWaitsForInFlight(t *testing.T) {
	t.Parallel()
	f := &fake{send: func(*msg) error { return errAsync }}
	e, a, _ := newEngine(t, f, Config{MaxInFlight: 16, Ordered: true})
	evs := events(4)
	if err := e.Publish(ctxT(t), evs); err != nil {
		t.Fatal(err)
	}
	var held []Ticket
	for len(held) < 4 {
		held = append(held, f.takePending()...)
		time.Sleep(time.Millisecond)
	}
	e.Settle(held[1], errors.New("timeout"))
	time.Sleep(20 * time.Millisecond)
	if n := len(f.sends()); n != 4 {
		t.Fatalf("%d sends before the others settled, want 4", n)
	}
	f.mu.Lock()
	f.send = nil
	f.mu.Unlock()
	e.Settle(held[0], nil)
	e.Settle(held[3], nil) // stored while e001 failed: not resent
	e.Settle(held[2], errors.New("timeout"))
	if err := e.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got, want := f.sends(), []string{"e000", "e001", "e002", "e003", "e001", "e002"}; !slices.Equal(got, want) {
		t.Fatalf("sends %v, want %v", got, want)
	}
	if order, _, _ := a.snapshot(); !slices.Equal(order, ids(evs)) {
		t.Fatalf("acknowledged %v", order)
	}
}

// A permanent failure is sticky: the earliest failed event is named by every
// Publish and Flush; events before it are still acknowledged, none after.
func TestPermanentSticky(t *testing.T) {
	t.Parallel()
	f := &fake{send: func(*msg) error { return errAsync }}
	e, a, logs := newEngine(t, f, Config{MaxInFlight: 64, Ordered: true})
	evs := events(10)
	if err := e.Publish(ctxT(t), evs); err != nil {
		t.Fatal(err)
	}
	var held []Ticket
	for len(held) < 10 {
		held = append(held, f.takePending()...)
		time.Sleep(time.Millisecond)
	}
	e.Settle(held[7], Permanent(errors.New("too large")))
	e.Settle(held[4], Permanent(errors.New("refused")))
	for _, i := range []int{0, 1, 2, 3, 5, 6, 8, 9} {
		e.Settle(held[i], nil)
	}
	err := e.Flush(ctxT(t))
	var pe *sink.PermanentError
	if !errors.As(err, &pe) || pe.EventID != "e004" || pe.Sink != "t" || pe.Err.Error() != "refused" || !sink.IsPermanent(err) {
		t.Fatalf("Flush: %#v, want the PermanentError of e004", err)
	}
	if err := e.Publish(ctxT(t), events(1)); !errors.Is(err, pe) {
		t.Fatalf("Publish after the failure: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		order, _, _ := a.snapshot()
		if slices.Equal(order, ids(evs[:4])) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acknowledged %v, want e000..e003", order)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := logs.count("rejected an event for good"); n != 1 {
		t.Fatalf("%d lines about the failure", n)
	}
}

// An event that cannot be encoded is refused by Publish, with the events
// after it; the ones before are delivered and the sink stays usable.
func TestEncodeErrorNotSticky(t *testing.T) {
	t.Parallel()
	f := &fake{encode: func(e *event.Event) error {
		if e.ID == "e003" {
			return errors.New("cannot encode")
		}
		return nil
	}}
	e, a, _ := newEngine(t, f, Config{MaxInFlight: 64, Ordered: true})
	evs := events(6)
	err := e.Publish(ctxT(t), evs)
	var pe *sink.PermanentError
	if !errors.As(err, &pe) || pe.EventID != "e003" {
		t.Fatalf("Publish: %v", err)
	}
	if err := e.Publish(ctxT(t), evs[4:]); err != nil {
		t.Fatalf("Publish after an encoding error: %v", err)
	}
	if err := e.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if order, _, _ := a.snapshot(); !slices.Equal(order, []string{"e000", "e001", "e002", "e004", "e005"}) {
		t.Fatalf("acknowledged %v", order)
	}
}

// Close with events in flight returns, acknowledges nothing more (not even
// what is settled afterwards) and refuses further use.
func TestCloseInFlight(t *testing.T) {
	t.Parallel()
	for _, ordered := range []bool{false, true} {
		f := &fake{send: func(*msg) error { return errAsync }}
		e, a, _ := newEngine(t, f, Config{MaxInFlight: 8, Ordered: ordered})
		evs := events(20)
		done := make(chan error, 1)
		go func() { done <- e.Publish(context.Background(), evs) }() // blocks at 8
		time.Sleep(20 * time.Millisecond)
		if err := e.Close(ctxT(t), nil); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, sink.ErrClosed) {
			t.Fatalf("blocked Publish: %v", err)
		}
		for _, tk := range f.takePending() {
			e.Settle(tk, nil)
		}
		if order, _, _ := a.snapshot(); len(order) != 0 {
			t.Fatalf("ordered=%v: %d acknowledged after Close", ordered, len(order))
		}
		if err := e.Flush(ctxT(t)); !errors.Is(err, sink.ErrClosed) {
			t.Fatalf("Flush after Close: %v", err)
		}
		if err := e.Close(ctxT(t), nil); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
}

// An unordered engine acknowledges each event as it is stored, and names the
// earliest permanent failure.
func TestUnordered(t *testing.T) {
	t.Parallel()
	f := &fake{send: func(*msg) error { return errAsync }}
	e, a, _ := newEngine(t, f, Config{MaxInFlight: 4})
	evs := events(4)
	if err := e.Publish(ctxT(t), evs); err != nil {
		t.Fatal(err)
	}
	var held []Ticket
	for len(held) < 4 {
		held = append(held, f.takePending()...)
		time.Sleep(time.Millisecond)
	}
	e.Settle(held[3], nil)
	e.Settle(held[2], Permanent(errors.New("late")))
	e.Settle(held[1], Permanent(errors.New("early")))
	if order, _, _ := a.snapshot(); !slices.Equal(order, []string{"e003"}) {
		t.Fatalf("acknowledged %v", order)
	}
	var pe *sink.PermanentError
	if err := e.Failure(); !errors.As(err, &pe) || pe.EventID != "e001" {
		t.Fatalf("failure %v, want e001's", err)
	}
	e.Settle(held[0], nil)
	if order, _, _ := a.snapshot(); !slices.Equal(order, []string{"e003", "e000"}) {
		t.Fatalf("acknowledged %v", order)
	}
}

// Recover sees the failure after every send settled; what it marks stored
// is acknowledged and not resent; a permanent error from it is the sink's
// failure, naming the earliest failed event.
func TestRecoverer(t *testing.T) {
	t.Parallel()
	errRefused := errors.New("refused: last is e002")
	var mu sync.Mutex
	tried := map[string]bool{}
	f := &fake{}
	f.send = func(m *msg) error {
		mu.Lock()
		defer mu.Unlock()
		if m.id != "e000" && !tried[m.id] {
			tried[m.id] = true
			return errRefused
		}
		return nil
	}
	f.recover = func(cause error, p *Pending[msg]) error {
		if cause != errRefused {
			return fmt.Errorf("cause %v", cause)
		}
		for i := range p.Len() {
			if p.Msg(i).id <= "e002" {
				p.MarkStored(i, 7)
			}
		}
		return nil
	}
	e, a, _ := newEngine(t, f, Config{MaxInFlight: 16, Ordered: true})
	evs := events(4)
	if err := e.Publish(ctxT(t), evs); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got, want := f.sends(), []string{"e000", "e001", "e002", "e003", "e003"}; !slices.Equal(got, want) {
		t.Fatalf("sends %v, want %v", got, want)
	}
	if order, _, _ := a.snapshot(); !slices.Equal(order, ids(evs)) {
		t.Fatalf("acknowledged %v", order)
	}

	f2 := &fake{send: func(m *msg) error {
		if m.id == "e001" {
			return errors.New("no responders")
		}
		return nil
	}}
	f2.recover = func(error, *Pending[msg]) error { return Permanent(errors.New("stream deleted")) }
	e2, _, _ := newEngine(t, f2, Config{MaxInFlight: 16, Ordered: true})
	if err := e2.Publish(ctxT(t), events(3)); err != nil {
		t.Fatal(err)
	}
	var pe *sink.PermanentError
	if err := e2.Flush(ctxT(t)); !errors.As(err, &pe) || pe.EventID != "e001" || pe.Err.Error() != "stream deleted" {
		t.Fatalf("Flush: %v", err)
	}
}

// Prev names the message before a batch while it is in the window.
func TestPrev(t *testing.T) {
	t.Parallel()
	f := &fake{send: func(*msg) error { return errAsync }}
	e, _, _ := newEngine(t, f, Config{MaxInFlight: 16, MaxBatch: 2, Ordered: true})
	if err := e.Publish(ctxT(t), events(4)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	e.mu.Lock()
	defer e.mu.Unlock()
	var prevs []string
	for seq := e.head; seq < e.next; seq++ {
		prevs = append(prevs, e.ring[seq&e.mask].m.prev)
	}
	if want := []string{"", "e000", "e001", "e002"}; !slices.Equal(prevs, want) {
		t.Fatalf("prev %q, want %q", prevs, want)
	}
}

// With EncodeErrorsStick an event Encode refuses is the sink's failure; the
// events taken before it are still sent and acknowledged, none after.
func TestEncodeErrorSticks(t *testing.T) {
	t.Parallel()
	f := &fake{encode: func(e *event.Event) error {
		if e.ID == "e003" {
			return errors.New("too large")
		}
		return nil
	}}
	e, a, _ := newEngine(t, f, Config{MaxInFlight: 64, Ordered: true, EncodeErrorsStick: true})
	evs := events(6)
	err := e.Publish(ctxT(t), evs)
	var pe *sink.PermanentError
	if !errors.As(err, &pe) || pe.EventID != "e003" {
		t.Fatalf("Publish: %v", err)
	}
	if err := e.Publish(ctxT(t), evs[4:]); !errors.Is(err, pe) {
		t.Fatalf("Publish after the failure: %v, want it again", err)
	}
	if err := e.Flush(ctxT(t)); !errors.Is(err, pe) {
		t.Fatalf("Flush: %v, want the failure", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		order, _, _ := a.snapshot()
		if slices.Equal(order, []string{"e000", "e001", "e002"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acknowledged %v, want e000..e002", order)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Recover may mark stored messages that were not sent in the round that
// failed (queued behind the failure): they are acknowledged, not sent.
func TestRecoverMarksQueued(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	failedOnce := false
	f := &fake{}
	f.send = func(m *msg) error {
		mu.Lock()
		defer mu.Unlock()
		if m.id == "e001" && !failedOnce {
			failedOnce = true
			return errors.New("refused: the last is e005")
		}
		return nil
	}
	f.recover = func(_ error, p *Pending[msg]) error {
		if p.Len() != 5 { // e001..e005: e000 is acknowledged
			return fmt.Errorf("pending %d, want 5", p.Len())
		}
		for i := range p.Len() {
			p.MarkStored(i, 0)
		}
		return nil
	}
	// One message per Send, so that e002..e005 are still queued when e001
	// fails.
	e, a, _ := newEngine(t, f, Config{MaxInFlight: 16, MaxBatch: 1, Ordered: true})
	f.mu.Lock()
	send := f.send
	f.send = func(m *msg) error {
		err := send(m)
		if err != nil {
			time.Sleep(20 * time.Millisecond) // let the engine see it before sending more
		}
		return err
	}
	f.mu.Unlock()
	evs := events(6)
	if err := e.Publish(ctxT(t), evs); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if order, _, _ := a.snapshot(); !slices.Equal(order, ids(evs)) {
		t.Fatalf("acknowledged %v", order)
	}
}
