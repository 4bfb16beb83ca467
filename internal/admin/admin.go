package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/backfill"
	"github.com/outbox-cdc/outbox-cdc/internal/dlq"
	"github.com/outbox-cdc/outbox-cdc/internal/observe"
	"github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

// Control is what the API steers: the running application.
type Control interface {
	// Status returns the application's state now, without blocking on the
	// network.
	Status() Status
	// PauseSink and ResumeSink pause and resume a sink. Their errors match
	// ErrUnknownSink for a name that is no sink and ErrUnsupported when
	// the application cannot pause.
	PauseSink(name string) error
	ResumeSink(name string) error
}

// Errors a Control returns, matched with errors.Is.
var (
	ErrUnknownSink = errors.New("admin: no such sink")
	ErrUnsupported = errors.New("admin: not supported by this build")
)

// ErrUnauthenticated is returned by Check for the console or API enabled on
// an address other hosts can reach without any token or user configured.
var ErrUnauthenticated = errors.New("admin: the console and API would answer anyone without authentication")

// Check refuses a configuration whose console and API would be reachable
// from other hosts without authentication: admin.enabled on a http.addr
// that is not loopback, with no admin.tokens and no admin.users. It
// resolves a host name (within a second).
func Check(ctx context.Context, cfg *config.Config) error {
	a := cfg.Admin
	if !a.Enabled || a.HasAuth() || cfg.HTTP.Addr == "-" || observe.IsLoopback(ctx, cfg.HTTP.Addr) {
		return nil
	}
	return fmt.Errorf("%w: admin.enabled is true and http.addr %s is not a loopback address, but admin.tokens and admin.users are empty. "+
		"Anyone who reaches that address could pause sinks and re-send events. Configure a token (admin.tokens, or OUTBOX_CDC_ADMIN_TOKENS_0_NAME and "+
		"OUTBOX_CDC_ADMIN_TOKENS_0_TOKEN) or a user, or bind http.addr to 127.0.0.1 (see docs/admin-console.md)", ErrUnauthenticated, cfg.HTTP.Addr)
}

// Options configure a Handler.
type Options struct {
	// Config is the application's configuration, with defaults: the admin
	// section, the outbox tables, the sinks (republish opens them) and the
	// dead-letter table. Required.
	Config *config.Config
	// Control is the running application. Required.
	Control Control
	// Logger receives one line per sign-in and per mutation (who, what,
	// the result), never a secret. Default: discarded.
	Logger *slog.Logger
}

// Handler serves the admin API under /api/v1 and the console under /admin.
// Build it with New; Run samples the history; Close releases its
// connections. Safe for concurrent use.
type Handler struct {
	cfg    *config.Config
	ctl    Control
	logger *slog.Logger
	auth   *authenticator
	pg     pgconn.Config
	mux    *http.ServeMux
	hist   *history

	mu    sync.Mutex
	pool  *pgxpool.Pool // searches; opened on first use
	store *dlq.Store    // dead letters; opened on first use
	meta  map[string]*tableMeta
}

// New builds the handler. It reads token files and returns their errors;
// it connects to nothing (connections are opened on first use).
func New(opts Options) (*Handler, error) {
	if opts.Config == nil || opts.Control == nil {
		return nil, errors.New("admin: New needs a Config and a Control")
	}
	au, err := newAuthenticator(opts.Config.Admin)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		cfg: opts.Config, ctl: opts.Control, logger: logger, auth: au,
		pg:   pgconn.Config{URL: opts.Config.Postgres.URL, ConnectTimeout: opts.Config.Postgres.ConnectTimeout},
		hist: newHistory(historySize), meta: map[string]*tableMeta{},
	}
	h.mux = http.NewServeMux()
	for _, rt := range h.routes() {
		handler := http.Handler(rt.handler)
		if !rt.public {
			handler = h.guard(handler)
		}
		h.mux.Handle(rt.method+" "+rt.pattern, handler)
	}
	h.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API route: see /api/v1/openapi.json")
	})
	h.mux.Handle("GET /admin", http.RedirectHandler("/admin/", http.StatusMovedPermanently))
	h.mux.Handle("GET /admin/", consoleFiles())
	return h, nil
}

// route is one API route; the OpenAPI document describes exactly these.
type route struct {
	method, pattern string
	handler         http.HandlerFunc
	public          bool // no authentication (the sign-in)
}

func (h *Handler) routes() []route {
	return []route{
		{"GET", "/api/v1/openapi.json", h.openAPI, false},
		{"POST", "/api/v1/session", h.signIn, true},
		{"GET", "/api/v1/session", h.whoAmI, false},
		{"DELETE", "/api/v1/session", h.signOut, false},
		{"GET", "/api/v1/status", h.status, false},
		{"GET", "/api/v1/history", h.history, false},
		{"GET", "/api/v1/sinks", h.sinks, false},
		{"POST", "/api/v1/sinks/{name}/pause", h.pause, false},
		{"POST", "/api/v1/sinks/{name}/resume", h.resume, false},
		{"GET", "/api/v1/events", h.events, false},
		{"GET", "/api/v1/events/{id}", h.event, false},
		{"POST", "/api/v1/events/{id}/republish", h.republish, false},
		{"GET", "/api/v1/dead-letters", h.deadLetters, false},
		{"POST", "/api/v1/dead-letters/replay", h.bulkReplay, false},
		{"POST", "/api/v1/dead-letters/discard", h.bulkDiscard, false},
		{"GET", "/api/v1/dead-letters/{id}", h.deadLetter, false},
		{"POST", "/api/v1/dead-letters/{id}/replay", h.replay, false},
		{"POST", "/api/v1/dead-letters/{id}/discard", h.discard, false},
	}
}

// ServeHTTP serves the API and the console, with the security headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; "+
		"manifest-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	if strings.HasPrefix(r.URL.Path, "/api/") {
		hd.Set("Cache-Control", "no-store")
	}
	h.mux.ServeHTTP(w, r)
}

// Guard wraps a handler with the API's authentication (a viewer suffices
// for GET), for /status.
func (h *Handler) Guard(next http.Handler) http.Handler {
	if h.auth.open {
		return next
	}
	return h.guard(next)
}

// Run samples the history every historyEvery until ctx is done. It blocks.
func (h *Handler) Run(ctx context.Context) {
	t := time.NewTicker(historyEvery)
	defer t.Stop()
	h.hist.add(h.ctl.Status())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.hist.add(h.ctl.Status())
		}
	}
}

// Close releases the connections. It is idempotent.
func (h *Handler) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pool != nil {
		h.pool.Close()
		h.pool = nil
	}
	if h.store != nil {
		h.store.Close()
		h.store = nil
	}
}

// searchPool returns the pool searches and lookups run on: the output
// settings of backfill's connection, and admin.query_timeout as
// statement_timeout.
func (h *Handler) searchPool(ctx context.Context) (*pgxpool.Pool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pool != nil {
		return h.pool, nil
	}
	o := backfill.ConnectOptions()
	o.Role = "admin"
	o.Params["statement_timeout"] = fmt.Sprint(h.cfg.Admin.QueryTimeout.Milliseconds())
	p, err := h.pg.Pool(ctx, o)
	if err != nil {
		return nil, err
	}
	h.pool = p
	return p, nil
}

func (h *Handler) deadLetterStore(ctx context.Context) (*dlq.Store, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.store != nil {
		return h.store, nil
	}
	s, err := dlq.Open(ctx, h.pg, h.cfg.DeadLetter.Table)
	if err != nil {
		return nil, err
	}
	h.store = s
	return s, nil
}

// audit logs one mutation: who, what, the result.
func (h *Handler) audit(r *http.Request, p Principal, status int, result string) {
	level := slog.LevelInfo
	if status >= 400 {
		level = slog.LevelWarn
	}
	h.logger.Log(r.Context(), level, "admin: "+r.Method+" "+r.URL.Path, "who", p.Name, "auth", p.Method, "role", p.Role.String(),
		"remote", r.RemoteAddr, "query", r.URL.RawQuery, "status", status, "result", result)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

// fail answers an error of a mutation and logs it.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	msg := pgconn.RedactURL(err.Error())
	h.audit(r, principalOf(r), status, msg)
	writeError(w, status, msg)
}
