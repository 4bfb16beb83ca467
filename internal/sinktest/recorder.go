package sinktest

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Recorder records what a sink reports: every acknowledgement (counted per
// event and in order, so a second one is seen), retries, duplicates and
// duplicates from another commit. It is a sink.Observer and a
// sink.OtherCommitObserver. Safe for concurrent use.
type Recorder struct {
	mu       sync.Mutex
	order    []*event.Event
	count    map[*event.Event]int
	byID     map[string]int
	retried  int
	lastErr  error
	dups     int
	others   []uint64
	at       map[*event.Event]time.Time // with WithTimes
	notified chan struct{}
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	return &Recorder{count: map[*event.Event]int{}, byID: map[string]int{}, notified: make(chan struct{}, 1)}
}

// WithTimes makes r also record when each event was acknowledged (AckTime),
// for latency measurements, and returns r.
func (r *Recorder) WithTimes() *Recorder {
	r.mu.Lock()
	r.at = map[*event.Event]time.Time{}
	r.mu.Unlock()
	return r
}

// AckTime returns when e was last acknowledged, with WithTimes.
func (r *Recorder) AckTime(e *event.Event) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.at[e]
	return t, ok
}

// Options returns the sink.Options a sink under test gets: its name,
// logger (nil discards), and acknowledgements and signals going to rec (nil
// ignores them). Every test builds its sink's options here, so that how a
// sink acknowledges is wired in one place.
func Options(name string, rec *Recorder, logger *slog.Logger) sink.Options {
	o := sink.Options{Name: name, Logger: logger, Ack: func(*event.Event) {}}
	if rec != nil {
		o.Observer = rec
		o.Ack = rec.Ack
	}
	return o
}

// Ack records e's acknowledgement.
func (r *Recorder) Ack(e *event.Event) {
	r.mu.Lock()
	r.order = append(r.order, e)
	r.count[e]++
	r.byID[e.ID]++
	if r.at != nil {
		r.at[e] = time.Now()
	}
	r.mu.Unlock()
	select {
	case r.notified <- struct{}{}:
	default:
	}
}

// Acked implements sink.Observer: it records an acknowledgement.
func (r *Recorder) Acked(_ string, e *event.Event) { r.Ack(e) }

// Retried implements sink.Observer.
func (r *Recorder) Retried(_ string, err error) {
	r.mu.Lock()
	r.retried++
	r.lastErr = err
	r.mu.Unlock()
}

// Duplicate implements sink.Observer.
func (r *Recorder) Duplicate(string, *event.Event) {
	r.mu.Lock()
	r.dups++
	r.mu.Unlock()
}

// DuplicateOtherCommit implements sink.OtherCommitObserver.
func (r *Recorder) DuplicateOtherCommit(_ string, _ *event.Event, storedLSN uint64) {
	r.mu.Lock()
	r.others = append(r.others, storedLSN)
	r.mu.Unlock()
}

// Acks returns the number of acknowledgements.
func (r *Recorder) Acks() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

// AckCount returns how many times e was acknowledged.
func (r *Recorder) AckCount(e *event.Event) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count[e]
}

// AckCountID returns how many times an event with this id was acknowledged.
func (r *Recorder) AckCountID(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

// Order returns the events in acknowledgement order.
func (r *Recorder) Order() []*event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*event.Event(nil), r.order...)
}

// Retries returns how many failed attempts were reported, and the last
// error.
func (r *Recorder) Retries() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retried, r.lastErr
}

// Duplicates returns how many duplicates (resends) were reported.
func (r *Recorder) Duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dups
}

// OtherCommits returns the stored LSNs of the duplicates from another commit.
func (r *Recorder) OtherCommits() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.others...)
}

// WaitAcks waits until at least n acknowledgements were recorded, failing
// the test after within.
func (r *Recorder) WaitAcks(t testing.TB, n int, within time.Duration) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for r.Acks() < n {
		select {
		case <-r.notified:
		case <-time.After(20 * time.Millisecond):
		case <-deadline.C:
			t.Fatalf("%d of %d events acknowledged after %v", r.Acks(), n, within)
		}
	}
}

// CheckEach fails unless every event in evs was acknowledged exactly once.
func (r *Recorder) CheckEach(t testing.TB, evs []*event.Event) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range evs {
		if n := r.count[e]; n != 1 {
			t.Fatalf("event %s acknowledged %d times, want 1", e.ID, n)
		}
	}
}

// CheckExactly fails unless exactly the events in evs were acknowledged,
// each once, and no other.
func (r *Recorder) CheckExactly(t testing.TB, evs []*event.Event) {
	t.Helper()
	r.CheckEach(t, evs)
	if n := r.Acks(); n != len(evs) {
		t.Fatalf("%d acknowledgements, want %d", n, len(evs))
	}
}

// CheckInOrder fails unless exactly evs were acknowledged, each once, in
// this order.
func (r *Recorder) CheckInOrder(t testing.TB, evs []*event.Event) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.order) != len(evs) {
		t.Fatalf("%d acknowledgements, want %d", len(r.order), len(evs))
	}
	for i, e := range evs {
		if n := r.count[e]; n != 1 {
			t.Fatalf("event %s acknowledged %d times", e.ID, n)
		}
		if r.order[i] != e {
			t.Fatalf("acknowledgement %d is %s, want %s", i, r.order[i].ID, e.ID)
		}
	}
}

// Log collects log lines for tests that check them; with go test -v they
// also go to standard error. Safe for concurrent use.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Logger returns a text logger writing to l at level and above.
func (l *Log) Logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: level}))
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return l.b.Write(p)
}

// String returns everything logged.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count returns how many times s occurs in the log.
func (l *Log) Count(s string) int { return strings.Count(l.String(), s) }

// Logger returns a logger for tests that do not check the log: debug and up
// to standard error with go test -v, else nowhere.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
