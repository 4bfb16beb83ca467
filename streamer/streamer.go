// Package streamer wires the replication stream, the decoder, the checkpoint
// and the sinks into one running outbox-cdc, for the command and for programs
// that embed it.
package streamer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/catalog"
	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/dlq"
	"github.com/outbox-cdc/outbox-cdc/internal/observe"
	"github.com/outbox-cdc/outbox-cdc/internal/pipeline"
	"github.com/outbox-cdc/outbox-cdc/internal/progress"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
	"github.com/outbox-cdc/outbox-cdc/internal/retention"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/internal/schema"
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
	serverEncoding := conn.PgConn().ParameterStatus("server_encoding") // Connect checked it
	err = schema.Check(ctx, conn, Names(cfg), func(s string) { logger.Warn(s) })
	if err == nil && cfg.UsesDeadLetter() {
		err = schema.CheckDeadLetter(ctx, conn, cfg.DeadLetter.Table)
	}
	if err == nil && cfg.Outbox.Retention.Age > 0 {
		err = retention.Check(ctx, conn)
	}
	if err == nil && cfg.Outbox.Messages.Enabled {
		err = schema.WarnMessagePrivileges(ctx, conn, !cfg.Heartbeat.Disabled, logger)
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
		t := sc.Target()
		t.Sink, t.Observer = s, obs
		t.Reopen = func(ctx context.Context) (sink.Sink, error) { return openSink(ctx, sc, sopts) }
		targets = append(targets, t)
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
	fanClosed := false // closed within the shutdown budget on the way out
	defer func() {
		if !fanClosed {
			fan.Close()
		}
	}()

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

	dcfg := cfg.Decoder()
	dcfg.ServerEncoding = serverEncoding
	dec, err := decoder.New(dcfg, logger)
	if err != nil {
		return err
	}
	cp := checkpoint.New(cfg.Checkpoint(), 0)
	server := observe.NewServer(cfg.Observe(), metrics, cfg.Postgres.URL, cfg.Postgres.Slot, logger)
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
	if cfg.Outbox.OnInvalid == sink.PolicyDeadLetter {
		hooks.Invalid = func(derr *decoder.Error) error {
			metrics.DecodeError()
			if errors.Is(derr, decoder.ErrNonTransactional) {
				metrics.NonTransactionalMessage()
			}
			for try := 1; ; try++ {
				err := store.PutRow(ctx, derr)
				if err == nil {
					logger.Warn("row stored as a dead letter", "err", derr.Error())
					metrics.DeadLettered("decoder")
					return nil
				}
				if try == 1 {
					logger.Warn("cannot store dead letter; retrying", "err", err)
				}
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
	// The HTTP server outlives the sinks: with http.linger it still answers
	// /readyz and /metrics after a stop for good.
	serverCtx, cancelServer := context.WithCancel(context.Background())
	defer cancelServer()
	serverDone := make(chan error, 1)
	go func() { serverDone <- server.Run(serverCtx) }()
	select {
	case err := <-serverDone: // only a listen error returns this early
		if err != nil {
			return err
		}
	case <-time.After(50 * time.Millisecond):
	}
	progressDone := make(chan struct{})
	saver := &progressSaver{st: prog, fan: fan, logger: logger, saved: map[string]uint64{}}
	if prog != nil {
		go func() {
			defer close(progressDone)
			saver.run(sinkCtx)
		}()
	} else {
		close(progressDone)
	}
	if cfg.Outbox.Retention.Age > 0 {
		pcfg, err := pgxpool.ParseConfig(cfg.Postgres.URL)
		if err != nil {
			return err
		}
		pcfg.ConnConfig.RuntimeParams["client_encoding"] = "UTF8" // table names may not be ASCII
		pool, err := pgxpool.NewWithConfig(ctx, pcfg)
		if err != nil {
			return err
		}
		defer pool.Close()
		go retention.Run(streamCtx, pool, cfg.TableNames(), cfg.Retention(), cp.LastAcked, logger)
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
	// One shutdown budget: from the moment the stop is asked for (a
	// signal, or a sink that failed for good), the stream drains for at
	// most drain_timeout, and closing everything takes at most closeGrace
	// more, whatever the sinks do.
	var stopAt atomic.Int64
	defer context.AfterFunc(streamCtx, func() { stopAt.CompareAndSwap(0, time.Now().UnixNano()) })()
	catDone := make(chan struct{})
	go func() {
		defer close(catDone)
		cat.Run(streamCtx, cp.Unbounded)
	}()
	streamErr := stream.Run(streamCtx)
	stopAt.CompareAndSwap(0, time.Now().UnixNano())
	cancelStream()
	<-catDone
	if d := cat.Drift(); d != nil && !errors.As(streamErr, new(*schema.DriftError)) {
		streamErr = errors.Join(d, streamErr)
	}
	var decErr *decoder.Error
	if errors.As(streamErr, &decErr) {
		metrics.DecodeError()
		if errors.Is(decErr, decoder.ErrNonTransactional) {
			metrics.NonTransactionalMessage()
		}
	}
	drain := cfg.Postgres.DrainTimeout
	if drain <= 0 {
		drain = replication.DefaultDrainTimeout
	}
	deadline := time.Unix(0, stopAt.Load()).Add(drain)
	closeCtx, cancelClose := context.WithDeadline(context.Background(), later(deadline, time.Now()).Add(closeGrace))
	defer cancelClose()

	// The sinks hand over what is queued until the deadline; then they are
	// cancelled.
	fan.Stop()
	var fanErr error
	select {
	case fanErr = <-fanDone:
	case <-time.After(time.Until(deadline)):
		cancelSinks()
		select {
		case fanErr = <-fanDone:
		case <-closeCtx.Done():
			logger.Warn("sink pipelines did not stop within the shutdown budget; leaving them")
		}
	}
	cancelSinks()
	fanClosed = true
	if err := fan.CloseContext(closeCtx); err != nil {
		logger.Warn("sinks did not close within the shutdown budget; leaving them", "err", err)
	}
	if prog != nil {
		select {
		case <-progressDone:
			saver.save(closeCtx)
		case <-closeCtx.Done():
		}
	}

	confirmed := decoder.FormatLSN(stream.Reported())
	if txs, events := cp.Unconfirmed(); txs > 0 || events > 0 {
		logger.Warn("stopped with events unconfirmed; the server sends them again at the next start",
			"events", events, "transactions", txs, "confirmed", confirmed, "sinks", unacknowledged(metrics))
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
	logger.Info("outbox-cdc stopped", "confirmed", confirmed)
	return nil
}

// closeGrace is how long closing the sinks and saving their progress may take
// after drain_timeout has passed.
const closeGrace = time.Second

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// unacknowledged names the sinks holding events they did not acknowledge,
// for the log line of a stop that left events unconfirmed.
func unacknowledged(m *observe.Metrics) string {
	var names []string
	for name, n := range m.Pending() {
		if n > 0 {
			names = append(names, fmt.Sprintf("%s (%d)", name, n))
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Names returns the server objects cfg names.
func Names(cfg *config.Config) schema.Names {
	return schema.Names{Slot: cfg.Postgres.Slot, Publication: cfg.Postgres.Publication, Tables: cfg.TableNames(),
		DeadLetter: cfg.DeadLetter.Table, DDLGuard: string(cfg.Postgres.DDLGuard), FailoverSlot: string(cfg.Postgres.FailoverSlot)}
}

// Connect opens a plain SQL connection with a clear error when the server
// cannot be reached, in client_encoding UTF8; a database in a server
// encoding outbox-cdc cannot read is an error naming it. The password never
// appears in the error.
func Connect(ctx context.Context, cfg *config.Config) (*pgx.Conn, error) {
	pc, err := pgx.ParseConfig(cfg.Postgres.URL)
	if err != nil {
		return nil, fmt.Errorf("config: postgres.url: %w", replication.RedactError(err))
	}
	conn, err := connect(ctx, cfg)
	if err != nil {
		var redacted redactedError
		if errors.As(err, &redacted) {
			return nil, fmt.Errorf("postgres: cannot connect to %s:%d (is PostgreSQL running, and is postgres.url right?): %s",
				pc.Host, pc.Port, redacted.Error())
		}
		return nil, err
	}
	return conn, nil
}

// connect is Connect keeping the server's error for errors.As (its text
// redacted).
func connect(ctx context.Context, cfg *config.Config) (*pgx.Conn, error) {
	pc, err := pgx.ParseConfig(cfg.Postgres.URL)
	if err != nil {
		return nil, replication.RedactError(err)
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
	if _, err := schema.UseUTF8(ctx, conn); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// redactedError hides passwords in err's text and keeps it for errors.As.
type redactedError struct{ err error }

func (r redactedError) Error() string { return replication.RedactURL(r.err.Error()) }
func (r redactedError) Unwrap() error { return r.err }

// progressSaver writes the fan-out's per-sink progress to the progress table.
type progressSaver struct {
	st     *progress.Store
	fan    *sink.Fanout
	logger *slog.Logger
	saved  map[string]uint64 // run's goroutine, then the caller of the last save
}

// run saves every second while the progress changes, until ctx is done.
func (p *progressSaver) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.save(ctx)
		}
	}
}

// save writes the positions that moved since the last save.
func (p *progressSaver) save(ctx context.Context) {
	changed := map[string]uint64{}
	for k, v := range p.fan.Progress() {
		if v > p.saved[k] {
			changed[k] = v
		}
	}
	if len(changed) == 0 {
		return
	}
	if err := p.st.Save(ctx, changed); err != nil {
		p.logger.Warn("cannot save per-sink progress", "err", err)
		return
	}
	for k, v := range changed {
		p.saved[k] = v
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
