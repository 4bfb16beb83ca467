package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/outbox-cdc/outbox-cdc/config"
)

// Status is the body of GET /api/v1/status.
type Status struct {
	Version string `json:"version"`
	// Role is the replication stream's state: starting, connecting,
	// standby, streaming, reconnecting or stopped.
	Role          string    `json:"role"`
	Since         time.Time `json:"since,omitzero"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Slot          Slot      `json:"slot"`
	// InFlightEvents and InFlightBytes are decoded and not yet acknowledged
	// by every sink they are routed to.
	InFlightEvents int64  `json:"inflight_events"`
	InFlightBytes  int64  `json:"inflight_bytes"`
	Sinks          []Sink `json:"sinks"`
	// Config is the effective configuration with every secret replaced by
	// config.Mask, keyed as in the YAML file.
	Config any `json:"config"`
}

// Slot is the replication slot as the last poll saw it.
type Slot struct {
	Name        string `json:"name"`
	Publication string `json:"publication"`
	// ConfirmedLSN is the last position this instance confirmed;
	// ConfirmedFlushLSN is the server's confirmed_flush_lsn at ReadAt.
	ConfirmedLSN      string  `json:"confirmed_lsn"`
	ConfirmedFlushLSN string  `json:"confirmed_flush_lsn,omitempty"`
	LagBytes          int64   `json:"lag_bytes"`
	LagSeconds        float64 `json:"lag_seconds"`
	RetainedWALBytes  int64   `json:"retained_wal_bytes"`
	// WALStatus is pg_replication_slots.wal_status (reserved, extended,
	// unreserved, lost).
	WALStatus string    `json:"wal_status,omitempty"`
	ReadAt    time.Time `json:"read_at,omitzero"`
	Error     string    `json:"error,omitempty"`
	Holder    *Holder   `json:"holder,omitempty"`
}

// Holder is the process streaming the slot.
type Holder struct {
	PID             int    `json:"pid"`
	ApplicationName string `json:"application_name"`
	ClientAddr      string `json:"client_addr,omitempty"`
	User            string `json:"user,omitempty"`
	OutboxCDC       bool   `json:"outbox_cdc"`
}

// Sink is one sink's configuration summary and state.
type Sink struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Destination string `json:"destination,omitempty"` // topic, subject, stream template or file
	Policy      string `json:"policy"`
	// State is paused, failing (an error since the last acknowledgement),
	// busy (events pending) or idle.
	State           string    `json:"state"`
	Paused          bool      `json:"paused"`
	Pending         int64     `json:"pending"`
	LastError       string    `json:"last_error,omitempty"`
	LastErrorSince  time.Time `json:"last_error_since,omitzero"`
	ProgressAt      time.Time `json:"progress_at,omitzero"`
	AcknowledgedLSN string    `json:"acknowledged_lsn"`
	// Published, Acknowledged and DeadLettered count events since start.
	Published    int64 `json:"published"`
	Acknowledged int64 `json:"acknowledged"`
	DeadLettered int64 `json:"dead_lettered"`
}

// SinkSummary returns the configured sink's type, destination and policy.
func SinkSummary(sc config.Sink) Sink {
	s := Sink{Name: sc.Name, Type: string(sc.Type), Policy: string(sc.Policy)}
	switch {
	case sc.Kafka != nil:
		s.Destination = "topic " + orDefault(sc.Kafka.Topic, "outbox.{{.AggregateType}}")
	case sc.NATS != nil:
		s.Destination = "subject " + orDefault(sc.NATS.Subject, "outbox.{{.AggregateType}}")
	case sc.Redis != nil:
		s.Destination = "stream " + orDefault(sc.Redis.Stream, "outbox:{{.AggregateType}}")
	case sc.Type == config.SinkFile:
		s.Destination = "file " + sc.Path
	case sc.Type == config.SinkStdout:
		s.Destination = "standard output"
	}
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// StateOf names a sink's state from its figures.
func StateOf(s Sink) string {
	switch {
	case s.Paused:
		return "paused"
	case s.LastError != "":
		return "failing"
	case s.Pending > 0:
		return "busy"
	}
	return "idle"
}

// EffectiveConfig renders a redacted configuration keyed as the YAML file.
func EffectiveConfig(c *config.Config) any {
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil
	}
	var v any
	if yaml.Unmarshal(b, &v) != nil {
		return nil
	}
	return v
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.ctl.Status())
}

func (h *Handler) sinks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"sinks": h.ctl.Status().Sinks})
}

func (h *Handler) pause(w http.ResponseWriter, r *http.Request) {
	h.steer(w, r, h.ctl.PauseSink, "paused")
}
func (h *Handler) resume(w http.ResponseWriter, r *http.Request) {
	h.steer(w, r, h.ctl.ResumeSink, "resumed")
}

func (h *Handler) steer(w http.ResponseWriter, r *http.Request, do func(string) error, done string) {
	name := r.PathValue("name")
	if err := do(name); err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrUnknownSink):
			status = http.StatusNotFound
		case errors.Is(err, ErrUnsupported):
			status = http.StatusNotImplemented
		}
		h.fail(w, r, status, err)
		return
	}
	h.audit(r, principalOf(r), http.StatusOK, "sink "+name+" "+done)
	for _, s := range h.ctl.Status().Sinks {
		if s.Name == name {
			writeJSON(w, http.StatusOK, s)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"name": name})
}

// signInRequest is the body of POST /api/v1/session.
type signInRequest struct {
	Token    string `json:"token"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// sessionInfo is the answer of the session routes.
type sessionInfo struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Method string `json:"method"`
	// CSRFToken goes into the X-CSRF-Token header of every mutation made
	// with the session cookie.
	CSRFToken string    `json:"csrf_token,omitempty"`
	Expires   time.Time `json:"expires,omitzero"`
	// Open tells that the API needs no authentication (loopback only).
	Open bool `json:"open,omitempty"`
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	if err := http.NewCrossOriginProtection().Check(r); err != nil {
		writeError(w, http.StatusForbidden, "cross-origin sign-in refused")
		return
	}
	var req signInRequest
	// An empty body is a sign-in without credentials: refused below.
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "the body must be JSON: {\"token\": \"...\"} or {\"username\": \"...\", \"password\": \"...\"}")
		return
	}
	var p Principal
	ok := false
	switch {
	case h.auth.open:
		p, ok = Principal{Name: "anonymous", Role: Operator, Method: "none"}, true
	case req.Token != "":
		p, ok = h.auth.token(strings.TrimSpace(req.Token))
	case req.Username != "":
		p, ok = h.auth.password(req.Username, req.Password)
	}
	if !ok {
		who := req.Username
		if who == "" {
			who = "(token)"
		}
		h.audit(r, Principal{Name: who, Method: "sign-in"}, http.StatusUnauthorized, "sign-in refused")
		writeError(w, http.StatusUnauthorized, errBadCredentials.Error())
		return
	}
	cookie, csrf, expires := h.auth.login(p)
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: cookie, Path: "/", Expires: expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	h.audit(r, p, http.StatusOK, "signed in as "+p.Role.String())
	writeJSON(w, http.StatusOK, sessionInfo{Name: p.Name, Role: p.Role.String(), Method: "session", CSRFToken: csrf, Expires: expires, Open: h.auth.open})
}

func (h *Handler) whoAmI(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	info := sessionInfo{Name: p.Name, Role: p.Role.String(), Method: p.Method, Open: h.auth.open}
	if c, err := r.Cookie(SessionCookie); err == nil && p.Method == "session" {
		if s := h.auth.session(c.Value); s != nil {
			info.CSRFToken, info.Expires = s.csrf, s.expires
		}
	}
	writeJSON(w, http.StatusOK, info)
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		h.auth.logout(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	h.audit(r, principalOf(r), http.StatusOK, "signed out")
	writeJSON(w, http.StatusOK, map[string]bool{"signed_out": true})
}

// History: samples of the lag and the throughput, for the console's chart.
const (
	historyEvery = 2 * time.Second
	historySize  = 300 // ten minutes
)

// Sample is one point of the history.
type Sample struct {
	Time           time.Time `json:"time"`
	LagBytes       int64     `json:"lag_bytes"`
	LagSeconds     float64   `json:"lag_seconds"`
	InFlightEvents int64     `json:"inflight_events"`
	// Rates are the events per second each sink acknowledged since the
	// previous sample.
	Rates map[string]float64 `json:"rates"`
}

type history struct {
	mu      sync.Mutex
	samples []Sample
	size    int
	last    map[string]int64
	lastAt  time.Time
}

func newHistory(size int) *history { return &history{size: size} }

func (hs *history) add(st Status) {
	now := time.Now()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	s := Sample{Time: now, LagBytes: st.Slot.LagBytes, LagSeconds: st.Slot.LagSeconds, InFlightEvents: st.InFlightEvents, Rates: map[string]float64{}}
	cur := map[string]int64{}
	for _, k := range st.Sinks {
		cur[k.Name] = k.Acknowledged
		if hs.last != nil {
			if d := now.Sub(hs.lastAt).Seconds(); d > 0 {
				s.Rates[k.Name] = float64(max(0, k.Acknowledged-hs.last[k.Name])) / d
			}
		}
	}
	hs.last, hs.lastAt = cur, now
	hs.samples = append(hs.samples, s)
	if len(hs.samples) > hs.size {
		hs.samples = append(hs.samples[:0], hs.samples[len(hs.samples)-hs.size:]...)
	}
}

func (hs *history) get() []Sample {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return append([]Sample{}, hs.samples...)
}

func (h *Handler) history(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"interval_seconds": historyEvery.Seconds(), "samples": h.hist.get()})
}
