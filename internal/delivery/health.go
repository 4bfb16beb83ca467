package delivery

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outbox-cdc/outbox-cdc/sink"
)

// The state-change lines every sink logs.
const (
	msgFailing   = "sink cannot deliver; holding acknowledgements and retrying with backoff"
	msgRecovered = "sink recovered; delivering again"
	msgStopped   = "sink rejected an event for good; it takes no more events until it is reopened"
)

// Health turns failed and successful attempts into state changes: one
// warning when an endpoint (a broker address, or "" for the sink as a whole)
// starts failing, one info line when it works again, and Observer.Retried
// for every failed attempt in between. Safe for concurrent use.
type Health struct {
	name     string
	logger   *slog.Logger
	observer sink.Observer
	muted    atomic.Bool // during startup checks (their error is the report) and after Close

	ndown atomic.Int32 // len(down), for a lock-free OK
	mu    sync.Mutex
	down  map[string]*outage
}

type outage struct {
	since    time.Time
	failures int
}

// NewHealth returns the health of sink name, logging to logger (nil
// discards) and signalling observer (nil ignores).
func NewHealth(name string, logger *slog.Logger, observer sink.Observer) *Health {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if observer == nil {
		observer = sink.NopObserver{}
	}
	return &Health{name: name, logger: logger, observer: observer}
}

// Mute stops (true) or resumes (false) logging and signalling: during
// startup checks, whose error is the report, and after Close.
func (h *Health) Mute(on bool) { h.muted.Store(on) }

// Retried reports a failed attempt that is not tied to an endpoint's state
// (an admin request that got no answer): Observer.Retried only.
func (h *Health) Retried(err error) {
	if err != nil && !h.muted.Load() {
		h.observer.Retried(h.name, err)
	}
}

// Failed reports a failed attempt at endpoint where ("" for the sink): it
// calls Observer.Retried and, when where was working until now, logs one
// warning with attrs and err.
func (h *Health) Failed(where string, err error, attrs ...any) {
	if err == nil || h.muted.Load() {
		return
	}
	h.observer.Retried(h.name, err)
	h.mu.Lock()
	defer h.mu.Unlock()
	if o := h.down[where]; o != nil {
		o.failures++
		return
	}
	if h.down == nil {
		h.down = make(map[string]*outage)
	}
	h.down[where] = &outage{since: time.Now(), failures: 1}
	h.ndown.Add(1)
	args := append(h.where(where), attrs...)
	h.logger.Warn(msgFailing, append(args, "err", err)...)
}

// OK reports that endpoint where works: when it was failing, one info line
// says for how long and after how many failed attempts.
func (h *Health) OK(where string) {
	if h.ndown.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	o := h.down[where]
	if o == nil {
		return
	}
	delete(h.down, where)
	h.ndown.Add(-1)
	if h.muted.Load() {
		return
	}
	h.logger.Info(msgRecovered, append(h.where(where),
		"down_for", time.Since(o.since).Round(time.Millisecond), "failed_attempts", o.failures)...)
}

// Failing reports whether any endpoint is failing, and since when the
// earliest did.
func (h *Health) Failing() (bool, time.Time) {
	if h.ndown.Load() == 0 {
		return false, time.Time{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var since time.Time
	for _, o := range h.down {
		if since.IsZero() || o.since.Before(since) {
			since = o.since
		}
	}
	return len(h.down) > 0, since
}

func (h *Health) where(where string) []any {
	if where == "" {
		return []any{"sink", h.name}
	}
	return []any{"sink", h.name, "endpoint", where}
}
