package observe

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// sinkHealth follows one sink's acknowledgements for readiness. The fan-out
// reports a batch as published before the sink sees it, so an
// acknowledgement (or a dead letter) never comes before the publication it
// settles.
type sinkHealth struct {
	name string

	mu       sync.Mutex
	pending  int64     // published, neither acknowledged nor dead-lettered
	progress time.Time // last acknowledgement, or when pending became non-zero
	lastErr  string
	errAt    time.Time

	// totals since start
	handed, acked, dead int64
}

func (h *sinkHealth) published(n int) {
	h.mu.Lock()
	if h.pending == 0 {
		h.progress = time.Now()
	}
	h.pending += int64(n)
	h.handed += int64(n)
	h.mu.Unlock()
}

// settled records n events the sink is done with: acknowledged (dead false),
// or stored as dead letters.
func (h *sinkHealth) settled(now time.Time, n int, dead bool) {
	h.mu.Lock()
	if dead {
		h.dead += int64(n)
	} else {
		h.acked += int64(n)
	}
	h.pending -= int64(n)
	if h.pending < 0 {
		h.pending = 0
	}
	h.progress = now
	h.lastErr = ""
	h.mu.Unlock()
}

func (h *sinkHealth) failed(err error) {
	h.mu.Lock()
	h.lastErr = err.Error()
	h.errAt = time.Now()
	h.mu.Unlock()
}

// stalled reports whether the sink has had events pending without any
// acknowledgement for longer than limit, since when, and the last error.
func (h *sinkHealth) stalled(now time.Time, limit time.Duration) (bool, int64, time.Time, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending == 0 || now.Sub(h.progress) < limit {
		return false, h.pending, h.progress, h.lastErr
	}
	return true, h.pending, h.progress, h.lastErr
}

// Pending returns, per sink, the events handed to it that it has neither
// acknowledged nor had stored as dead letters. Safe for concurrent use.
func (m *Metrics) Pending() map[string]int64 {
	out := map[string]int64{}
	for _, h := range m.sinkHealths() {
		h.mu.Lock()
		out[h.name] = h.pending
		h.mu.Unlock()
	}
	return out
}

// SinkHealth is what the metrics know of one sink.
type SinkHealth struct {
	Name string
	// Pending counts the events handed to the sink that it has neither
	// acknowledged nor had stored as dead letters.
	Pending int64
	// Progress is when the sink last acknowledged an event (or when
	// Pending became non-zero); zero before either.
	Progress time.Time
	// LastError is the last failure the sink reported since its last
	// acknowledgement, and ErrorAt when; "" when none.
	LastError string
	ErrorAt   time.Time
	// Published, Acknowledged and DeadLettered count the events handed to
	// the sink, acknowledged by it, and stored as its dead letters since
	// start.
	Published, Acknowledged, DeadLettered int64
}

// SinkHealths returns every sink's health, sorted by name. Safe for
// concurrent use.
func (m *Metrics) SinkHealths() []SinkHealth {
	var out []SinkHealth
	for _, h := range m.sinkHealths() {
		h.mu.Lock()
		sh := SinkHealth{Name: h.name, Pending: h.pending, Progress: h.progress, LastError: h.lastErr,
			Published: h.handed, Acknowledged: h.acked, DeadLettered: h.dead}
		if h.lastErr != "" {
			sh.ErrorAt = h.errAt
		}
		h.mu.Unlock()
		out = append(out, sh)
	}
	return out
}

func sortHealths(hs []*sinkHealth) {
	slices.SortFunc(hs, func(a, b *sinkHealth) int { return strings.Compare(a.name, b.name) })
}

// Check is one readiness or liveness check.
type Check struct {
	Name   string     `json:"name"`
	OK     bool       `json:"ok"`
	Reason string     `json:"reason,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
}

// Report is the body of /healthz and /readyz.
type Report struct {
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
}

func newReport(checks []Check) Report {
	r := Report{OK: true, Checks: checks}
	for _, c := range checks {
		if !c.OK {
			r.OK = false
		}
	}
	return r
}

func sinceStr(t time.Time) string {
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), time.Since(t).Round(time.Second))
}
