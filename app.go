package outboxcdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/admin"
	"github.com/outbox-cdc/outbox-cdc/internal/catalog"
	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/dlq"
	"github.com/outbox-cdc/outbox-cdc/internal/fanout"
	"github.com/outbox-cdc/outbox-cdc/internal/observe"
	"github.com/outbox-cdc/outbox-cdc/internal/pgconn"
	"github.com/outbox-cdc/outbox-cdc/internal/pipeline"
	"github.com/outbox-cdc/outbox-cdc/internal/progress"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
	"github.com/outbox-cdc/outbox-cdc/internal/retention"
	"github.com/outbox-cdc/outbox-cdc/internal/schema"
	"github.com/outbox-cdc/outbox-cdc/internal/supervise"
	"github.com/outbox-cdc/outbox-cdc/internal/testhook"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Options extend an application beyond its configuration. The zero Options
// are valid.
type Options struct {
	// Logger receives one line per state change, never one per event, and
	// never a secret. Default: discarded.
	Logger *slog.Logger
	// Version is logged at start and exported as build_info. Default "".
	Version string
	// Sinks are sinks the embedding program builds, added after the
	// configured ones. Default none.
	Sinks []CustomSink
	// Observer receives every sink's metrics signals besides the built-in
	// Prometheus metrics. Its methods must not block. Default none.
	Observer sink.Observer
}

// CustomSink is a sink the embedding program builds: events flow to it as
// to a configured sink, under the same acknowledgement rules (the slot never
// passes an event it did not acknowledge).
type CustomSink struct {
	// Name identifies the sink in logs, metrics and the control surface.
	// Required; unique among all sinks.
	Name string
	// Route selects the events the sink receives. Default all.
	Route sink.Route
	// New builds the sink. It is called once, by New, with the Options
	// every sink gets: the sink must acknowledge each event through
	// Options.Ack once its destination holds it. Required.
	New func(sink.Options) sink.Sink
}

// ErrClosed is returned by Run when the application already ran or was
// closed: an App runs once.
var ErrClosed = errors.New("outboxcdc: the application already ran or was closed")

// ErrRunning is returned by Close while Run runs: cancel Run's context
// instead; Run releases everything before it returns.
var ErrRunning = errors.New("outboxcdc: the application is running; cancel Run's context to stop it")

// closeTail is how long closing may take after the drain budget
// (postgres.drain_timeout) is spent: the last standby status and the goodbye
// to the server, closing the sinks, saving per-sink progress, ending HTTP
// requests. It is the only fixed part of the shutdown budget.
const closeTail = time.Second

// App is one outbox-cdc: a replication stream, its sinks and everything
// that watches them. Build it with New, run it with Run. Its methods are safe
// for concurrent use.
type App struct {
	cfg     *config.Config
	opts    Options
	logger  *slog.Logger
	pg      pgconn.Config
	started time.Time

	metrics *observe.Metrics
	server  *observe.Server
	admin   *admin.Handler  // nil unless admin.enabled
	store   *dlq.Store      // nil unless a policy stores dead letters
	fan     *fanout.Fanout  // opens and owns the sinks
	targets []fanout.Target // the sinks, in the fan-out's order
	prog    *progress.Store // nil with one sink, or without the progress table
	saver   *progress.Saver // nil when prog is nil
	cp      *checkpoint.Checkpoint
	cat     *catalog.Catalog
	stream  *replication.Stream
	retPool *pgxpool.Pool // nil unless outbox.retention is on
	beat    *heartbeat    // nil when heartbeats are disabled

	group        supervise.Group
	sinksClosing atomic.Bool // Run closes the sinks within its budget; release must not again

	mu        sync.Mutex
	state     int                     // see the constants below
	stopRun   context.CancelCauseFunc // stops the stream while Run runs
	streamCtx context.Context         // the stream's context while Run runs
	released  bool
	closers   []func() // what New opened, in order; release runs them backwards
}

// App states.
const (
	built = iota
	running
	done
)

// New builds the application cfg describes and checks what can be checked
// before anything runs: the server's settings and the slot, the outbox
// tables and their publication, the dead-letter and progress tables when
// used, and every sink (each is opened, which connects to its broker). The
// HTTP listener is bound. It returns the first problem found, with what to
// do about it; nothing is left open then. ctx bounds the checks only.
func New(ctx context.Context, cfg *config.Config, opts Options) (_ *App, err error) {
	if cfg == nil {
		return nil, errors.New("outboxcdc: New needs a configuration (config.Load)")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &App{cfg: cfg, opts: opts, logger: logger, pg: wiring.Postgres(cfg), started: time.Now()}
	defer func() {
		if err != nil {
			a.release()
		}
	}()
	hooks := testhook.From(ctx)

	serverEncoding, err := a.preflight(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.UsesDeadLetter() {
		if a.store, err = dlq.Open(ctx, a.pg, cfg.DeadLetter.Table); err != nil {
			return nil, err
		}
		a.onClose(a.store.Close)
	}

	a.metrics = observe.NewMetrics(opts.Version, cfg.Postgres.Slot)
	// The checkpoint is the acknowledgement tracker: the fan-out registers
	// every sink with it and binds each sink's Ack handle to it.
	a.cp = checkpoint.New(wiring.Checkpoint(cfg), 0)
	if err := a.openSinks(ctx); err != nil {
		return nil, err
	}
	if err := a.openProgress(ctx); err != nil {
		return nil, err
	}

	dcfg := wiring.Decoder(cfg)
	dcfg.ServerEncoding = serverEncoding
	dec, err := decoder.New(dcfg, logger)
	if err != nil {
		return nil, err
	}
	ocfg := wiring.Observe(cfg)
	ocfg.ShutdownTimeout = closeTail
	a.server = observe.NewServer(ocfg, a.metrics, a.pg, cfg.Postgres.Slot, logger)
	if err := admin.Check(ctx, cfg); err != nil {
		return nil, err
	}
	if err := a.server.Listen(ctx); err != nil {
		return nil, err
	}
	a.onClose(func() { a.server.Close() })
	if err := a.openAdmin(ctx); err != nil {
		return nil, err
	}

	// Outbox tables by identity, and their publication membership watched:
	// on drift the stream stops, and the slot is never confirmed past the
	// last position where membership was verified.
	a.cat, err = catalog.Open(ctx, catalog.Config{
		Names:    wiring.Names(cfg),
		Interval: cfg.Postgres.PublicationCheck,
		Eager:    cfg.Postgres.StatusInterval,
		Connect:  func(ctx context.Context) (*pgx.Conn, error) { return a.pg.Connect(ctx, pgconn.Options{}) },
	}, catalog.Hooks{
		Verified:     a.cp.Bound,
		ShuttingDown: a.cp.Lift,
		Drift: func(d *schema.DriftError) {
			a.metrics.Drift(d.Table)
			a.server.Fault("publication", d)
			a.stop(d)
		},
	}, logger)
	if err != nil {
		return nil, err
	}
	a.onClose(a.cat.Close)
	a.cp.Bound(a.cat.Verified())
	dec.UseCatalog(a.cat, cfg.Postgres.Publication)

	phooks := pipeline.Hooks{Decoded: a.metrics.Decoded, Verify: a.cat.Verify}
	if cfg.Outbox.OnInvalid == sink.PolicyDeadLetter {
		phooks.Invalid = a.storeInvalid
	}
	rcfg := wiring.Replication(cfg)
	rcfg.NoKeepaliveFollow = hooks.NoKeepaliveFollow
	rcfg.CloseTimeout = closeTail
	a.stream, err = replication.New(rcfg, pipeline.New(dec, a.cp, a.fan, phooks), logger, replication.Hooks{
		State:      a.metrics.State,
		Reconnect:  a.server.Reconnect,
		WindowFull: a.metrics.WindowFull,
	})
	if err != nil {
		return nil, err
	}
	a.server.Attach(a.stream, a.cp)

	if cfg.Outbox.Retention.Age > 0 {
		if a.retPool, err = a.pg.Pool(ctx, pgconn.Options{}); err != nil {
			return nil, err
		}
		a.onClose(a.retPool.Close)
	}
	if !cfg.Heartbeat.Disabled {
		a.beat = &heartbeat{pg: a.pg, interval: cfg.Heartbeat.Interval, prefix: dcfg.WithDefaults().HeartbeatPrefix,
			streaming: func() bool { return a.stream.State() == replication.StateStreaming }, logger: logger}
	}
	for _, t := range a.targets {
		a.metrics.AddSink(t.Name)
	}
	for _, t := range cfg.TableNames() {
		a.metrics.AddOutbox(t)
	}
	return a, nil
}

// preflight checks the server, the slot and the tables on one connection
// and returns the server encoding.
func (a *App) preflight(ctx context.Context) (string, error) {
	cfg := a.cfg
	conn, err := a.pg.Connect(ctx, pgconn.Options{})
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	serverEncoding := conn.PgConn().ParameterStatus("server_encoding") // Connect checked it
	if err := schema.Check(ctx, conn, wiring.Names(cfg), func(s string) { a.logger.Warn(s) }); err != nil {
		return "", err
	}
	if cfg.UsesDeadLetter() {
		if err := schema.CheckDeadLetter(ctx, conn, cfg.DeadLetter.Table); err != nil {
			return "", err
		}
	}
	if cfg.Outbox.Retention.Age > 0 {
		if err := retention.Check(ctx, conn); err != nil {
			return "", err
		}
	}
	if cfg.Outbox.Messages.Enabled {
		if err := schema.WarnMessagePrivileges(ctx, conn, !cfg.Heartbeat.Disabled, a.logger); err != nil {
			return "", err
		}
	}
	return serverEncoding, nil
}

// openSinks builds the fan-out, which opens the configured sinks, then the
// custom ones, each with an Ack handle bound to it.
func (a *App) openSinks(ctx context.Context) error {
	var obs sink.Observer = a.metrics
	if a.opts.Observer != nil {
		obs = multiObserver{a.metrics, a.opts.Observer}
	}
	for _, sc := range a.cfg.Sinks {
		t := wiring.Target(sc)
		t.Open = func(ctx context.Context, o sink.Options) (sink.Sink, error) { return wiring.OpenSink(ctx, sc, o) }
		t.Reopen = true
		a.targets = append(a.targets, t)
	}
	for i, c := range a.opts.Sinks {
		if c.Name == "" || c.New == nil {
			return fmt.Errorf("outboxcdc: Options.Sinks[%d]: a custom sink needs a Name and a New function", i)
		}
		a.targets = append(a.targets, fanout.Target{Name: c.Name, Route: c.Route,
			Open: func(_ context.Context, o sink.Options) (sink.Sink, error) { return c.New(o), nil }})
	}
	fcfg := fanout.Config{Targets: a.targets, Checkpoint: a.cp, Logger: a.logger, Observer: obs, Hooks: fanout.Hooks{
		Published:    a.metrics.Published,
		DeadLettered: func(name string, _ *event.Event) { a.metrics.DeadLettered(name) },
	}}
	if a.store != nil {
		fcfg.Dead = a.store
	}
	fan, err := fanout.New(ctx, fcfg)
	if err != nil {
		return err
	}
	a.fan = fan
	a.onClose(func() {
		if !a.sinksClosing.Load() {
			a.fan.Close()
		}
	})
	return nil
}

// openProgress opens the per-sink progress table when there are several
// sinks: a sink that acknowledged more than the slot shows (another sink was
// lagging) is not sent those events again after a restart.
func (a *App) openProgress(ctx context.Context) error {
	if len(a.targets) < 2 {
		return nil
	}
	prog, err := progress.Open(ctx, a.pg, wiring.Names(a.cfg).ProgressTable(), a.cfg.Postgres.Slot)
	if err != nil {
		return err
	}
	pos, err := prog.Load(ctx)
	if err != nil {
		a.logger.Warn("per-sink progress is not kept: run `outbox-cdc setup` to create its table", "err", err)
		prog.Close()
		return nil
	}
	a.cp.Restore(pos)
	a.prog = prog
	a.onClose(prog.Close)
	a.saver = progress.NewSaver(prog, a.cp.Positions, a.logger)
	return nil
}

// onClose registers what release closes; called by New only.
func (a *App) onClose(fn func()) { a.closers = append(a.closers, fn) }

// release closes what New opened, once, in reverse order.
func (a *App) release() {
	a.mu.Lock()
	if a.released {
		a.mu.Unlock()
		return
	}
	a.released = true
	a.state = done
	a.mu.Unlock()
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
}

// Close releases what New opened, for an App whose Run is never called.
// After Run returned it does nothing (Run released everything); while Run
// runs it returns ErrRunning. It is idempotent.
func (a *App) Close() error {
	a.mu.Lock()
	st := a.state
	a.mu.Unlock()
	if st == running {
		return ErrRunning
	}
	a.release()
	return nil
}

// stop asks a running App to stop reading WAL and shut down, with cause as
// the reason; it does nothing when Run is not running. It never blocks.
func (a *App) stop(cause error) {
	a.mu.Lock()
	stop := a.stopRun
	a.mu.Unlock()
	if stop != nil {
		stop(cause)
	}
}

// streamContext returns the stream's context while Run runs, else a done
// context.
func (a *App) streamContext() context.Context {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.streamCtx == nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}
	return a.streamCtx
}

// storeInvalid stores a row that cannot become an event as a dead letter
// (outbox.on_invalid: dead-letter), retrying until it is stored or the
// stream stops. It runs on the stream's goroutine, so the slot cannot pass
// the row's transaction before the row is safe.
func (a *App) storeInvalid(derr *decoder.Error) error {
	a.metrics.DecodeError()
	if errors.Is(derr, decoder.ErrNonTransactional) {
		a.metrics.NonTransactionalMessage()
	}
	ctx := a.streamContext()
	put := func(ctx context.Context) error { return a.store.PutRow(ctx, derr) }
	if err := dlq.Keep(ctx, a.logger, nil, put, "table", derr.Table, "row", derr.RowID); err != nil {
		return err
	}
	a.logger.Warn("row stored as a dead letter", "err", derr.Error())
	a.metrics.DeadLettered("decoder")
	return nil
}

// multiObserver feeds two observers.
type multiObserver [2]sink.Observer

func (m multiObserver) Acked(s string, e *event.Event) {
	m[0].Acked(s, e)
	m[1].Acked(s, e)
}

func (m multiObserver) Retried(s string, err error) {
	m[0].Retried(s, err)
	m[1].Retried(s, err)
}

func (m multiObserver) Duplicate(s string, e *event.Event) {
	m[0].Duplicate(s, e)
	m[1].Duplicate(s, e)
}

// DuplicateOtherCommit implements sink.OtherCommitObserver for whichever of
// the two implements it, and counts a duplicate for the other.
func (m multiObserver) DuplicateOtherCommit(s string, e *event.Event, storedLSN uint64) {
	for _, o := range m {
		if oc, ok := o.(sink.OtherCommitObserver); ok {
			oc.DuplicateOtherCommit(s, e, storedLSN)
		} else {
			o.Duplicate(s, e)
		}
	}
}
