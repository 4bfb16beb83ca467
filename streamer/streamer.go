// Package streamer wires the replication stream, the decoder, the checkpoint
// and the sinks into one running outbox-cdc, for the command and for programs
// that embed it.
package streamer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/catalog"
	"github.com/outbox-cdc/outbox-cdc/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/decoder"
	"github.com/outbox-cdc/outbox-cdc/dlq"
	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/observe"
	"github.com/outbox-cdc/outbox-cdc/pipeline"
	"github.com/outbox-cdc/outbox-cdc/progress"
	"github.com/outbox-cdc/outbox-cdc/replication"
	"github.com/outbox-cdc/outbox-cdc/retention"
	"github.com/outbox-cdc/outbox-cdc/retry"
	"github.com/outbox-cdc/outbox-cdc/schema"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Options extend a run beyond the configuration.
type Options struct {
	// Logger receives state changes; nil discards.
	Logger *slog.Logger
	// Version is logged at start.
	Version string
	// Sinks are sinks built by the caller (in-process handlers), added to the
	// configured ones. Each is built with the Options every sink gets; it
	// must acknowledge through Options.Ack so that metrics and health see it.
	Sinks []Custom
	// Observer receives sink metrics signals; nil ignores them.
	Observer sink.Observer
	// Started, if set, is called with the stream once it is built, so the
	// caller can watch its state.
	Started func(*replication.Stream, *checkpoint.Checkpoint)
	// NoKeepaliveFollow is a test-only switch; see replication.Config.
	NoKeepaliveFollow bool
}

// Custom is a sink the embedding program builds.
type Custom struct {
	Name  string
	Route sink.Route
	New   func(sink.Options) sink.Sink
}

// Run checks the server, opens the sinks and streams until ctx is done; then
// it stops reading, drains what is in flight, confirms it and returns nil. It
// returns an error when the setup is wrong, when a sink cannot be opened, and
// when something reconnecting cannot fix stops the stream (a row that cannot
// become a CloudEvent, a sink that failed for good).
func Run(ctx context.Context, cfg *config.Config, opts Options) error {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	conn, err := Connect(ctx, cfg)
	if err != nil {
		return err
	}
	err = schema.Check(ctx, conn, Names(cfg), func(s string) { logger.Warn(s) })
	if err == nil && cfg.UsesDeadLetter() {
		err = schema.CheckDeadLetter(ctx, conn, cfg.DeadLetter.Table)
	}
	if err == nil && cfg.Outbox.Retention.Age > 0 {
		err = retention.Check(ctx, conn)
	}
	conn.Close(context.Background())
	if err != nil {
		return err
	}
	var store *dlq.Store
	if cfg.UsesDeadLetter() {
		if store, err = dlq.Open(ctx, cfg.Postgres.URL, cfg.DeadLetter.Table); err != nil {
			return err
		}
		defer store.Close()
	}

	metrics := observe.NewMetrics(opts.Version)
	var obs sink.Observer = metrics
	if opts.Observer != nil {
		obs = multiObserver{metrics, opts.Observer}
	}
	var targets []sink.Target
	closeAll := func() {
		for _, t := range targets {
			t.Sink.Close()
		}
	}
	for _, sc := range cfg.Sinks {
		sopts := sink.Options{Name: sc.Name, Logger: logger, Observer: obs, Index: len(targets)}
		s, err := openSink(ctx, sc, sopts)
		if err != nil {
			closeAll()
			return err
		}
		targets = append(targets, sink.Target{Name: sc.Name, Sink: s, Route: sc.Route, MaxBatch: sc.MaxBatch,
			Policy: sink.Policy(sc.Policy), Backoff: sc.Retry, Observer: obs,
			Reopen: func(ctx context.Context) (sink.Sink, error) { return openSink(ctx, sc, sopts) }})
	}
	for _, c := range opts.Sinks {
		sopts := sink.Options{Name: c.Name, Logger: logger, Observer: obs, Index: len(targets)}
		targets = append(targets, sink.Target{Name: c.Name, Route: c.Route, Sink: c.New(sopts), Observer: obs})
	}
	for _, t := range targets {
		metrics.AddSink(t.Name)
	}
	for _, t := range cfg.TableNames() {
		metrics.AddOutbox(t)
	}
	var dead sink.DeadLetterer
	if store != nil {
		dead = store
	}
	fan, err := sink.NewFanout(targets, logger, sink.Hooks{
		Published:    metrics.Published,
		DeadLettered: func(name string, _ *event.Event) { metrics.DeadLettered(name) },
	}, dead)
	if err != nil {
		closeAll()
		return err
	}
	defer fan.Close()

	// Per-sink progress: a sink that acknowledged more than the slot shows
	// (another sink was lagging) is not sent those events again.
	var prog *progress.Store
	if len(targets) > 1 {
		names := Names(cfg)
		if prog, err = progress.Open(ctx, cfg.Postgres.URL, names.ProgressTable(), cfg.Postgres.Slot); err != nil {
			return err
		}
		defer prog.Close()
		pos, err := prog.Load(ctx)
		if err != nil {
			logger.Warn("per-sink progress is not kept: run `outbox-cdc setup` to create its table", "err", err)
			prog.Close()
			prog = nil
		} else {
			fan.Resume(pos)
		}
	}

	dec, err := decoder.New(cfg.Decoder(), logger)
	if err != nil {
		return err
	}
	cp := checkpoint.New(cfg.Checkpoint(), 0)
	server := observe.NewServer(cfg.HTTP, metrics, cfg.Postgres.URL, cfg.Postgres.Slot, logger)
	streamCtx, cancelStream := context.WithCancel(ctx)
	defer cancelStream()

	// Outbox tables by identity, and their publication membership watched:
	// on drift the stream stops, and the slot is never confirmed past the
	// last position where membership was verified.
	cat, err := catalog.Open(ctx, catalog.Config{
		Names:    Names(cfg),
		Interval: cfg.Postgres.PublicationCheck,
		Eager:    cfg.Replication().StatusInterval,
		Connect:  func(ctx context.Context) (*pgx.Conn, error) { return connect(ctx, cfg) },
	}, catalog.Hooks{
		Verified:     cp.Bound,
		ShuttingDown: cp.Lift,
		Drift: func(d *schema.DriftError) {
			metrics.Drift(d.Table)
			server.Fault("publication", d)
			cancelStream()
		},
	}, logger)
	if err != nil {
		return err
	}
	defer cat.Close()
	cp.Bound(cat.Verified())
	dec.UseCatalog(cat, cfg.Postgres.Publication)
	hooks := pipeline.Hooks{Decoded: metrics.Decoded, Verify: cat.Verify}
	if cfg.Outbox.OnInvalid == "dead-letter" {
		hooks.Invalid = func(derr *decoder.Error) error {
			metrics.DecodeError()
			for try := 1; ; try++ {
				err := store.PutRow(ctx, derr)
				if err == nil {
					logger.Warn("row stored as a dead letter", "err", derr.Error())
					metrics.DeadLettered("decoder")
					return nil
				}
				logger.Warn("cannot store dead letter; retrying", "err", err)
				if (retry.Backoff{}).Sleep(ctx, try) != nil {
					return ctx.Err()
				}
			}
		}
	}
	pl := pipeline.New(dec, cp, fan, hooks)
	rcfg := cfg.Replication()
	rcfg.NoKeepaliveFollow = opts.NoKeepaliveFollow
	stream, err := replication.New(rcfg, pl, logger, replication.Hooks{
		State:      metrics.State,
		Reconnect:  server.Reconnect,
		WindowFull: metrics.WindowFull,
	})
	if err != nil {
		return err
	}
	server.Attach(stream, cp)
	if opts.Started != nil {
		opts.Started(stream, cp)
	}

	// The sinks run on their own context: at shutdown they must keep
	// delivering while the stream drains.
	sinkCtx, cancelSinks := context.WithCancel(context.Background())
	defer cancelSinks()
	serverDone := make(chan error, 1)
	go func() { serverDone <- server.Run(sinkCtx) }()
	select {
	case err := <-serverDone: // only a listen error returns this early
		if err != nil {
			return err
		}
	case <-time.After(50 * time.Millisecond):
	}
	progressDone := make(chan struct{})
	if prog != nil {
		go func() {
			defer close(progressDone)
			saveProgress(sinkCtx, prog, fan, logger)
		}()
	} else {
		close(progressDone)
	}
	if cfg.Outbox.Retention.Age > 0 {
		pool, err := pgxpool.New(ctx, cfg.Postgres.URL)
		if err != nil {
			return err
		}
		defer pool.Close()
		go retention.Run(streamCtx, pool, cfg.TableNames(), cfg.Outbox.Retention, cp.LastAcked, logger)
	}
	if !cfg.Heartbeat.Disabled {
		go heartbeat(streamCtx, cfg, cfg.Decoder().WithDefaults().HeartbeatPrefix, stream, logger)
	}
	fanDone := make(chan error, 1)
	go func() {
		err := fan.Run(sinkCtx)
		if err != nil {
			cancelStream() // a sink failed for good: stop reading, drain, confirm
		}
		fanDone <- err
	}()

	logger.Info("outbox-cdc starting", "version", opts.Version, "slot", cfg.Postgres.Slot,
		"publication", cfg.Postgres.Publication, "sinks", len(targets))
	catDone := make(chan struct{})
	go func() {
		defer close(catDone)
		cat.Run(streamCtx, cp.Unbounded)
	}()
	streamErr := stream.Run(streamCtx)
	cancelStream()
	<-catDone
	if d := cat.Drift(); d != nil && !errors.As(streamErr, new(*schema.DriftError)) {
		streamErr = errors.Join(d, streamErr)
	}
	var decErr *decoder.Error
	if errors.As(streamErr, &decErr) {
		metrics.DecodeError()
	}

	fan.Stop()
	defer func() { cancelSinks(); <-progressDone }()
	var fanErr error
	select {
	case fanErr = <-fanDone:
	case <-time.After(10 * time.Second):
		cancelSinks()
		fanErr = <-fanDone
	}
	if err := errors.Join(streamErr, fanErr); err != nil {
		if cfg.HTTP.Linger > 0 && cfg.HTTP.Addr != "-" {
			if cat.Drift() == nil {
				server.Fault("stream", err)
			}
			logger.Error("the stream stopped; serving /readyz and /metrics before exiting", "linger", cfg.HTTP.Linger, "err", err)
			select {
			case <-time.After(cfg.HTTP.Linger):
			case <-ctx.Done():
			}
		}
		return err
	}
	logger.Info("outbox-cdc stopped", "confirmed", decoder.FormatLSN(stream.Reported()))
	return nil
}

// Names returns the server objects cfg names.
func Names(cfg *config.Config) schema.Names {
	return schema.Names{Slot: cfg.Postgres.Slot, Publication: cfg.Postgres.Publication, Tables: cfg.TableNames(),
		DeadLetter: cfg.DeadLetter.Table, DDLGuard: cfg.Postgres.DDLGuard}
}

// Connect opens a plain SQL connection with a clear error when the server
// cannot be reached. The password never appears in the error.
func Connect(ctx context.Context, cfg *config.Config) (*pgx.Conn, error) {
	pc, err := pgx.ParseConfig(cfg.Postgres.URL)
	if err != nil {
		return nil, fmt.Errorf("config: postgres.url: %s", replication.RedactURL(err.Error()))
	}
	conn, err := connect(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: cannot connect to %s:%d (is PostgreSQL running, and is postgres.url right?): %s",
			pc.Host, pc.Port, replication.RedactURL(err.Error()))
	}
	return conn, nil
}

// connect is Connect keeping the server's error for errors.As (its text
// redacted).
func connect(ctx context.Context, cfg *config.Config) (*pgx.Conn, error) {
	pc, err := pgx.ParseConfig(cfg.Postgres.URL)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Postgres.ConnectTimeout
	if timeout <= 0 {
		timeout = replication.DefaultConnectTimeout
	}
	pc.ConnectTimeout = timeout
	pc.RuntimeParams["application_name"] = "outbox-cdc"
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, redactedError{err}
	}
	return conn, nil
}

// redactedError hides passwords in err's text and keeps it for errors.As.
type redactedError struct{ err error }

func (r redactedError) Error() string { return replication.RedactURL(r.err.Error()) }
func (r redactedError) Unwrap() error { return r.err }

// saveProgress writes the fan-out's per-sink progress every second while it
// changes, and once more when ctx is done.
func saveProgress(ctx context.Context, st *progress.Store, fan *sink.Fanout, logger *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	saved := map[string]uint64{}
	save := func(ctx context.Context) {
		cur := fan.Progress()
		changed := map[string]uint64{}
		for k, v := range cur {
			if v > saved[k] {
				changed[k] = v
			}
		}
		if err := st.Save(ctx, changed); err != nil {
			logger.Warn("cannot save per-sink progress", "err", err)
			return
		}
		for k, v := range changed {
			saved[k] = v
		}
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			save(fctx)
			cancel()
			return
		case <-t.C:
			save(ctx)
		}
	}
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
