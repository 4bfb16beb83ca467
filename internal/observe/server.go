package observe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	pgc "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
	"github.com/outbox-cdc/outbox-cdc/internal/schema"
)

// Defaults.
const (
	DefaultAddr        = "127.0.0.1:9187"
	DefaultSlotPoll    = 10 * time.Second
	DefaultSinkTimeout = 30 * time.Second
	DefaultMaxLag      = 5 * time.Minute
	DefaultMaxLagBytes = 1 << 30
	DefaultStall       = 2 * time.Minute

	DefaultShutdownTimeout = time.Second
)

// Config configures the HTTP server and the health rules.
type Config struct {
	// Addr is the listen address. Default 127.0.0.1:9187 (loopback only);
	// "-" disables the server (metrics are still kept). Run warns at start
	// when it is not a loopback address: nothing served here asks for
	// authentication.
	Addr string
	// SlotPoll is how often the slot's figures are read from the server.
	// Default 10s.
	SlotPoll time.Duration
	// SinkTimeout: a sink with events pending and no acknowledgement for this
	// long makes /readyz fail. Default 30s.
	SinkTimeout time.Duration
	// MaxLag: /readyz fails while the oldest unacknowledged event committed
	// longer ago than this. Default 5m.
	MaxLag time.Duration
	// MaxLagBytes: /readyz fails while the slot's confirmed position trails
	// the server's WAL by more than this. Default 1 GiB.
	MaxLagBytes int64
	// Stall: /healthz fails when the replication loop has not turned for this
	// long. Default 2m.
	Stall time.Duration
	// Linger keeps /metrics, /readyz and /status up this long after the
	// stream stopped for good (a row under outbox.on_invalid: block, an
	// outbox table that left the publication), so that a scrape sees why
	// before the process exits non-zero; SIGTERM ends it early. Default 0:
	// exit at once.
	Linger time.Duration
	// ShutdownTimeout bounds the graceful end of requests in progress when
	// Run stops; connections still open then are closed. Default 1s; the
	// application sets it from its shutdown budget.
	ShutdownTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.SlotPoll <= 0 {
		c.SlotPoll = DefaultSlotPoll
	}
	if c.SinkTimeout <= 0 {
		c.SinkTimeout = DefaultSinkTimeout
	}
	if c.MaxLag <= 0 {
		c.MaxLag = DefaultMaxLag
	}
	if c.MaxLagBytes <= 0 {
		c.MaxLagBytes = DefaultMaxLagBytes
	}
	if c.Stall <= 0 {
		c.Stall = DefaultStall
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	return c
}

// Server serves /metrics, /healthz, /readyz and /status, and polls the slot.
type Server struct {
	cfg     Config
	m       *Metrics
	logger  *slog.Logger
	pg      pgc.Config
	slot    string
	started time.Time
	ln      net.Listener // bound by Listen; nil with Addr "-"

	mu       sync.Mutex
	stream   *replication.Stream
	cp       *checkpoint.Checkpoint
	slotSt   schema.SlotStatus
	slotErr  error
	slotAt   time.Time
	lastErr  string
	lastErrT time.Time
	faults   []Check // why the stream stopped for good, see Fault

	admin http.Handler                    // routes under /admin and /api/, see Mount
	guard func(http.Handler) http.Handler // wraps /status when the admin API authenticates
}

// Mount serves h under /admin and /api/ and wraps /status with guard (nil:
// /status stays open), for the admin console and its API. /metrics,
// /healthz and /readyz are never wrapped. Call it before Run.
func (s *Server) Mount(h http.Handler, guard func(http.Handler) http.Handler) {
	s.mu.Lock()
	s.admin, s.guard = h, guard
	s.mu.Unlock()
}

// NewServer returns a Server that polls slot in the database pg names.
// Listen binds its address; Run serves and polls.
func NewServer(cfg Config, m *Metrics, pg pgc.Config, slot string, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg.withDefaults(), m: m, logger: logger, pg: pg, slot: slot, started: time.Now()}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "inflight_events", Help: "Events decoded and not yet acknowledged by every routed sink."},
		func() float64 { e, _ := s.inflight(); return float64(e) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "inflight_bytes", Help: "Bytes of events in flight."},
		func() float64 { _, b := s.inflight(); return float64(b) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "lag_seconds", Help: "Age of the oldest committed event not yet acknowledged everywhere; 0 when nothing is in flight."},
		func() float64 { return s.lag().Seconds() }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "confirmed_lsn", Help: "The last position this instance confirmed to the server, as a number."},
		func() float64 {
			if st := s.getStream(); st != nil {
				return float64(st.Reported())
			}
			return 0
		}))
	return s
}

// Attach gives the server the running stream and checkpoint.
func (s *Server) Attach(st *replication.Stream, cp *checkpoint.Checkpoint) {
	s.mu.Lock()
	s.stream, s.cp = st, cp
	s.mu.Unlock()
}

// Reconnect records why the stream was lost, for /readyz.
func (s *Server) Reconnect(err error) {
	s.mu.Lock()
	s.lastErr, s.lastErrT = err.Error(), time.Now()
	s.mu.Unlock()
	s.m.Reconnect(err)
}

// Fault makes /readyz fail with a check named name and err as the reason,
// for what stopped the stream for good (an outbox table that left the
// publication). Safe for concurrent use.
func (s *Server) Fault(name string, err error) {
	now := time.Now()
	s.mu.Lock()
	s.faults = append(s.faults, Check{Name: name, Reason: err.Error(), Since: &now})
	s.mu.Unlock()
}

func (s *Server) getStream() *replication.Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stream
}

func (s *Server) inflight() (int64, int64) {
	s.mu.Lock()
	cp := s.cp
	s.mu.Unlock()
	if cp == nil {
		return 0, 0
	}
	return cp.InFlight()
}

func (s *Server) lag() time.Duration {
	s.mu.Lock()
	cp := s.cp
	s.mu.Unlock()
	if cp == nil {
		return 0
	}
	if t, ok := cp.Oldest(); ok {
		return max(0, time.Since(t))
	}
	return 0
}

// Listen binds the listen address (nothing with Addr "-"), warning when it
// is not a loopback address, and returns the error of a taken or invalid
// address. Call it once, before Run; Close releases the address when Run
// never runs.
func (s *Server) Listen(ctx context.Context) error {
	if s.cfg.Addr == "-" {
		return nil
	}
	if !IsLoopback(ctx, s.cfg.Addr) {
		s.logger.Warn("http.addr "+s.cfg.Addr+" is not a loopback address: /metrics, /healthz and /readyz (and /status unless the admin API authenticates) answer anyone who reaches it; bind 127.0.0.1 unless a firewall or an authenticating proxy guards it, and put TLS in front of it for admin tokens and passwords",
			"addr", s.cfg.Addr)
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("http: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address, or "" before Listen or with Addr "-".
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close releases the listener of a Server whose Run never ran.
func (s *Server) Close() error {
	if s.ln == nil {
		return nil
	}
	return s.ln.Close()
}

// Run serves HTTP on the listener Listen bound (if any) and polls the slot
// until ctx is done. Then it lets requests in progress finish for at most
// ShutdownTimeout, closes every connection, and returns once the serving
// goroutine has exited. It blocks.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		s.pollSlot(ctx)
		return nil
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(s.ln) }()
	s.logger.Info("http listening", "addr", s.ln.Addr().String())
	s.pollSlot(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if srv.Shutdown(sctx) != nil {
		srv.Close() // requests still in progress, or clients that never sent one
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// Handler returns the HTTP routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeReport(w, s.Health()) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { writeReport(w, s.Ready()) })
	var status http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.Status())
	})
	s.mu.Lock()
	admin, guard := s.admin, s.guard
	s.mu.Unlock()
	if guard != nil {
		status = guard(status)
	}
	mux.Handle("GET /status", status)
	if admin != nil {
		mux.Handle("/admin", admin)
		mux.Handle("/admin/", admin)
		mux.Handle("/api/", admin)
	}
	return mux
}

func writeReport(w http.ResponseWriter, r Report) {
	w.Header().Set("Content-Type", "application/json")
	if !r.OK {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(r)
}

// Health is liveness: the process's loops turn.
func (s *Server) Health() Report {
	st := s.getStream()
	if st == nil {
		return newReport([]Check{{Name: "replication_loop", OK: true, Reason: "starting"}})
	}
	last := st.LastActivity()
	c := Check{Name: "replication_loop", OK: true}
	if time.Since(last) > s.cfg.Stall && st.State() != replication.StateStopped {
		c.OK = false
		c.Reason = "the replication loop has not run since " + sinceStr(last)
		c.Since = &last
	}
	return newReport([]Check{c})
}

// Ready is readiness: streaming (or a declared standby), every sink
// acknowledging, lag under the thresholds.
func (s *Server) Ready() Report {
	var checks []Check
	state, since := s.m.CurrentState()
	rc := Check{Name: "replication", OK: state == replication.StateStreaming || state == replication.StateStandby, Reason: state.String()}
	if !rc.OK {
		s.mu.Lock()
		if s.lastErr != "" {
			rc.Reason += ": " + s.lastErr
		}
		s.mu.Unlock()
		rc.Since = &since
	} else if state == replication.StateStandby {
		rc.Reason = "standby: another instance streams the slot"
		if st := s.getStream(); st != nil {
			if h := st.Holder(); h != nil {
				// Ready only behind another outbox-cdc: behind any other
				// program nothing is delivered.
				rc.OK, rc.Reason = h.OutboxCDC(), h.Waiting(s.slot)
				if !rc.OK {
					rc.Since = &since
				}
			}
		}
	}
	checks = append(checks, rc)
	now := time.Now()
	for _, h := range s.m.sinkHealths() {
		stalled, pending, progress, lastErr := h.stalled(now, s.cfg.SinkTimeout)
		c := Check{Name: "sink:" + h.name, OK: !stalled}
		if stalled {
			c.Reason = fmt.Sprintf("sink %s has %d events unacknowledged and no acknowledgement since %s", h.name, pending, sinceStr(progress))
			if lastErr != "" {
				c.Reason += "; last error: " + lastErr
			}
			p := progress
			c.Since = &p
		}
		checks = append(checks, c)
	}
	lc := Check{Name: "lag", OK: true}
	if l := s.lag(); l > s.cfg.MaxLag {
		lc.OK = false
		lc.Reason = fmt.Sprintf("the oldest unacknowledged event committed %s ago (max_lag %s)", l.Round(time.Second), s.cfg.MaxLag)
	}
	s.mu.Lock()
	slotSt, slotAt := s.slotSt, s.slotAt
	s.mu.Unlock()
	if slotSt.Exists && slotSt.LagBytes > s.cfg.MaxLagBytes && state == replication.StateStreaming {
		lc.OK = false
		if lc.Reason != "" {
			lc.Reason += "; "
		}
		lc.Reason += fmt.Sprintf("the slot's confirmed position trails the server's WAL by %d bytes (max_lag_bytes %d, measured %s)", slotSt.LagBytes, s.cfg.MaxLagBytes, sinceStr(slotAt))
	}
	checks = append(checks, lc)
	s.mu.Lock()
	checks = append(checks, s.faults...)
	s.mu.Unlock()
	return newReport(checks)
}

// StatusReport is the body of /status.
type StatusReport struct {
	State          string             `json:"state"`
	Since          time.Time          `json:"since"`
	Confirmed      string             `json:"confirmed_lsn"`
	InFlightEvents int64              `json:"inflight_events"`
	InFlightBytes  int64              `json:"inflight_bytes"`
	LagSeconds     float64            `json:"lag_seconds"`
	Slot           *schema.SlotStatus `json:"slot,omitempty"`
	SlotError      string             `json:"slot_error,omitempty"`
	Ready          Report             `json:"ready"`
	Uptime         string             `json:"uptime"`
}

// Status returns the live state.
func (s *Server) Status() StatusReport {
	state, since := s.m.CurrentState()
	r := StatusReport{State: state.String(), Since: since, Uptime: time.Since(s.started).Round(time.Second).String(), Ready: s.Ready()}
	if st := s.getStream(); st != nil {
		r.Confirmed = decoder.FormatLSN(st.Reported())
	}
	r.InFlightEvents, r.InFlightBytes = s.inflight()
	r.LagSeconds = s.lag().Seconds()
	s.mu.Lock()
	if s.slotSt.Slot != "" {
		st := s.slotSt
		r.Slot = &st
	}
	if s.slotErr != nil {
		r.SlotError = s.slotErr.Error()
	}
	s.mu.Unlock()
	return r
}

// SlotStatus returns the slot's figures from the last poll, when they were
// read, and why they could not be (nil when they could). Safe for concurrent
// use.
func (s *Server) SlotStatus() (schema.SlotStatus, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slotSt, s.slotAt, s.slotErr
}

// pollSlot reads the slot's figures every SlotPoll until ctx is done; one
// poll may take as long as a connection attempt (pgconn.Config.Timeout).
func (s *Server) pollSlot(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(s.cfg.SlotPoll)
		qctx, cancel := context.WithTimeout(ctx, s.pg.Timeout())
		if conn == nil || conn.IsClosed() {
			c, err := s.pg.Connect(qctx, pgc.Options{})
			if err != nil {
				cancel()
				s.setSlot(schema.SlotStatus{}, errors.New(pgc.RedactError(err).Error()))
				continue
			}
			conn = c
		}
		st, err := schema.Status(qctx, conn, s.slot)
		cancel()
		if err != nil {
			conn.Close(context.Background())
			conn = nil
		}
		s.setSlot(st, err)
	}
}

func (s *Server) setSlot(st schema.SlotStatus, err error) {
	s.mu.Lock()
	s.slotSt, s.slotErr, s.slotAt = st, err, time.Now()
	stream := s.stream
	s.mu.Unlock()
	if err != nil {
		return
	}
	m := s.m
	m.slotUp.Set(b2f(st.Exists))
	m.slotLag.Set(float64(st.LagBytes))
	m.slotRetained.Set(float64(st.RetainedBytes))
	if st.SafeWALSize != nil {
		m.slotSafeWAL.Set(float64(*st.SafeWALSize))
	} else {
		m.slotSafeWAL.Set(-1)
	}
	m.slotActive.Set(b2f(st.Active))
	m.slotOwned.Set(b2f(st.Active && stream != nil && stream.State() == replication.StateStreaming))
	for _, ws := range []string{"reserved", "extended", "unreserved", "lost"} {
		m.slotWAL.WithLabelValues(ws).Set(b2f(st.WALStatus == ws))
	}
}

// IsLoopback reports whether a listen address accepts loopback connections
// only: a loopback IP, "localhost", or a name every address of which is
// loopback (resolved within a second). An empty host (every interface) is
// not.
func IsLoopback(ctx context.Context, addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return false
		}
	}
	return true
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
