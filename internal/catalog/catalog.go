package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/pgerr"
	"github.com/outbox-cdc/outbox-cdc/internal/schema"
)

// Defaults.
const (
	DefaultInterval = 5 * time.Second
	DefaultEager    = 500 * time.Millisecond
	queryTimeout    = 10 * time.Second
)

// Config configures a Catalog.
type Config struct {
	// Names are the slot, publication and configured outbox tables.
	Names schema.Names
	// Interval is the longest time between two membership checks. Default
	// 5s.
	Interval time.Duration
	// Eager is how often a check is made while the checkpoint could move
	// past the last verified position (normally the status interval).
	// Default 500ms.
	Eager time.Duration
	// Connect opens the catalog connection. Required.
	Connect func(context.Context) (*pgx.Conn, error)
}

// Hooks receive what the catalog finds; every field is optional and must
// not block.
type Hooks struct {
	// Verified is called with the WAL position at which every outbox table
	// was last verified to be in the publication as before.
	Verified func(lsn uint64)
	// Drift is called once, when an outbox table is found no longer streamed
	// as it was.
	Drift func(*schema.DriftError)
	// ShuttingDown is called when the server refuses the catalog connection
	// because it is shutting down: it waits for the replication client to
	// confirm everything it sent, which Verified would hold back (the
	// checkpoint's Lift). The next passing check calls Verified again; it
	// compares the membership with the one verified before the shutdown.
	ShuttingDown func()
}

// Catalog maps relations to outbox tables and watches their membership.
type Catalog struct {
	cfg    Config
	hooks  Hooks
	logger *slog.Logger
	// base bounds the lookups made on the stream's goroutine (Relation,
	// Changed): it ends with Run's context or Close, so that a stopping
	// reader never waits on the catalog.
	base   context.Context
	cancel context.CancelFunc

	mu      sync.Mutex // guards everything below
	conn    *pgx.Conn
	tables  []schema.Outbox
	byOID   map[uint32]string // relation OID → configured table
	drift   *schema.DriftError
	lsn     uint64    // last verified WAL position
	since   time.Time // rows written after lsn have a time column at or after this; see openSince
	hidden  bool      // sessions of other roles were hidden from openSince
	failing bool      // the last check could not reach the server
	lastTry time.Time
	closed  bool
	down    bool // the server said it is shutting down; see Hooks.ShuttingDown
}

var _ decoder.Catalog = (*Catalog)(nil)

// Open connects, resolves the outbox tables and verifies their membership
// (schema.Outboxes). It returns a named error (a *schema.DriftError for an
// outbox that changed while outbox-cdc was stopped). logger may be nil.
func Open(ctx context.Context, cfg Config, hooks Hooks, logger *slog.Logger) (*Catalog, error) {
	if cfg.Connect == nil {
		return nil, errors.New("catalog: Config.Connect is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Eager <= 0 {
		cfg.Eager = DefaultEager
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	conn, err := cfg.Connect(ctx)
	if err != nil {
		return nil, err
	}
	since, hidden, err := openSince(ctx, conn)
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	tables, lsn, err := schema.Outboxes(ctx, conn, cfg.Names, func(s string) { logger.Warn(s) })
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	c := &Catalog{cfg: cfg, hooks: hooks, logger: logger, conn: conn, tables: tables,
		byOID: map[uint32]string{}, lsn: lsn, since: since, hidden: hidden}
	c.base, c.cancel = context.WithCancel(context.Background())
	if hidden {
		logger.Warn("sessions of other roles are hidden from outbox-cdc in pg_stat_activity: should an outbox table leave the publication, the time it gives to backfill from cannot allow for their open transactions; grant it pg_read_all_stats")
	}
	for _, t := range tables {
		for _, oid := range t.Known {
			c.byOID[oid] = t.Name
		}
		logger.Info("outbox table resolved", "table", t.Name, "oid", t.OID, "publication", cfg.Names.Publication)
	}
	return c, nil
}

// Close closes the connection. Later checks fail.
func (c *Catalog) Close() {
	c.cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		c.conn.Close(context.Background())
		c.conn = nil
	}
}

// Verified returns the WAL position at which membership was last verified.
func (c *Catalog) Verified() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lsn
}

// Drift returns the drift found, or nil.
func (c *Catalog) Drift() *schema.DriftError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drift
}

// Relation implements decoder.Catalog: it maps the relation by OID and, for
// an outbox table, verifies the membership first.
func (c *Catalog) Relation(oid uint32, name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	table, ok := c.byOID[oid]
	if !ok {
		var err error
		if table, err = c.lookupLocked(oid, name); err != nil {
			return "", err
		}
	}
	if table == "" {
		return "", nil
	}
	if err := c.checkLocked(c.base); err != nil {
		return "", err
	}
	return table, nil
}

// Changed implements decoder.Catalog: the DDL guard let a change to an
// outbox table through at commitLSN; verify now.
func (c *Catalog) Changed(commitLSN uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logger.Info("the DDL guard let a change to an outbox table through on purpose; verifying", "lsn", decoder.FormatLSN(commitLSN))
	return c.checkLocked(c.base)
}

// Verify checks the membership now; on success the verified position is
// raised (Hooks.Verified). It returns a *schema.DriftError on drift, or an
// error when the server cannot be read.
func (c *Catalog) Verify(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checkLocked(ctx)
}

// Run checks the membership every Interval, and every Eager while want (the
// checkpoint's unbounded safe position) is past the verified position, until
// ctx is done or drift is found. It blocks. When ctx is done, lookups in
// progress on the stream's goroutine are cancelled too.
func (c *Catalog) Run(ctx context.Context, want func() uint64) {
	defer func() {
		if ctx.Err() != nil {
			c.cancel()
			return
		}
		context.AfterFunc(ctx, c.cancel) // returned on drift: still end with ctx
	}()
	t := time.NewTicker(c.cfg.Eager)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w := want()
		c.mu.Lock()
		if c.drift != nil || c.closed {
			c.mu.Unlock()
			return
		}
		if time.Since(c.lastTry) < c.cfg.Interval && w <= c.lsn {
			c.mu.Unlock()
			continue
		}
		err := c.checkLocked(ctx)
		c.mu.Unlock()
		var d *schema.DriftError
		if errors.As(err, &d) {
			return
		}
	}
}

// lookupLocked maps a relation outbox-cdc has not seen: a partition of an
// outbox table (attached before or while streaming), or a relation that no
// longer exists but had an outbox table's name (WAL from before a recreate
// setup did not record).
func (c *Catalog) lookupLocked(oid uint32, name string) (string, error) {
	conn, err := c.connLocked(c.base)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(c.base, queryTimeout)
	defer cancel()
	var ancestors []uint32
	var exists bool
	err = conn.QueryRow(ctx, `SELECT ARRAY(SELECT relid::oid FROM pg_catalog.pg_partition_ancestors($1::oid::regclass) WHERE relid::oid <> $1::oid),
		EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = $1::oid)`, oid).Scan(&ancestors, &exists)
	if err != nil {
		return "", c.failedLocked(fmt.Errorf("catalog: look up relation %s (OID %d): %w", name, oid, err))
	}
	for _, t := range c.tables {
		if slices.ContainsFunc(ancestors, func(a uint32) bool { return slices.Contains(t.Known, a) }) {
			c.byOID[oid] = t.Name
			c.logger.Info("partition of an outbox table", "partition", name, "oid", oid, "table", t.Name)
			return t.Name, nil
		}
		if !exists && name == t.Name {
			c.byOID[oid] = t.Name
			c.logger.Warn("relation no longer exists but had the outbox table's name: its rows in the WAL are taken as the outbox's", "relation", name, "oid", oid)
			return t.Name, nil
		}
	}
	return "", nil
}

// checkLocked verifies every outbox table once.
func (c *Catalog) checkLocked(ctx context.Context) error {
	if c.drift != nil {
		return c.drift
	}
	c.lastTry = time.Now()
	err := c.inspectLocked(ctx)
	var d *schema.DriftError
	switch {
	case errors.As(err, &d):
		c.drift = d
		c.logger.Error("outbox table left the stream; stopping", "table", d.Table, "publication", d.Publication, "err", d.Error())
		if c.hooks.Drift != nil {
			c.hooks.Drift(d)
		}
	case err != nil && !c.failing:
		c.failing = true
		c.logger.Warn("cannot verify the outbox tables' publication membership; the slot is not confirmed past the last verified position until it can",
			"verified", decoder.FormatLSN(c.lsn), "err", err)
	case err == nil && c.failing:
		c.failing = false
		c.logger.Info("publication membership verified again", "lsn", decoder.FormatLSN(c.lsn))
	}
	return err
}

func (c *Catalog) inspectLocked(ctx context.Context) error {
	conn, err := c.connLocked(ctx)
	if err != nil {
		return err
	}
	targets := make([]schema.Target, len(c.tables))
	for i, t := range c.tables {
		targets[i] = schema.Target{OID: t.OID, Name: t.Name}
	}
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	from, hidden, err := openSince(qctx, conn)
	var lsn uint64
	var ins []schema.Inspection
	if err == nil {
		lsn, ins, err = schema.Inspect(qctx, conn, c.cfg.Names.Publication, targets)
	}
	cancel()
	if err != nil {
		return c.failedLocked(fmt.Errorf("catalog: verify publication membership: %w", err))
	}
	at := c.since.UTC().Format(time.RFC3339)
	since := fmt.Sprintf("since %s (publication membership was last verified at LSN %s; %s is when the oldest transaction then open began, since created_at defaults to the time a row's transaction began",
		at, decoder.FormatLSN(c.lsn), at)
	if c.hidden {
		since += "; sessions of other roles were hidden from outbox-cdc, so go back further by the longest transaction that writes the outbox"
	}
	since += ")"
	for i := range c.tables {
		t, in := &c.tables[i], ins[i]
		if d := schema.Judge(*t, in, c.cfg.Names.Publication, since); d != nil {
			return d
		}
		if in.Name != t.Current {
			c.logger.Warn("outbox table renamed; following it by OID", "table", t.Name, "now", in.Name, "oid", t.OID)
			t.Current = in.Name
		}
		t.Membership = in.Membership
	}
	if lsn >= c.lsn {
		c.lsn, c.since, c.hidden = lsn, from, hidden
	}
	if c.hooks.Verified != nil {
		c.hooks.Verified(c.lsn)
	}
	return nil
}

// openSince returns the time from which rows written from now on have their
// time column (created_at, by default now(): when the row's transaction
// began): the start of the oldest transaction open in this database, or the
// server's clock when none is older. A transaction open when membership is
// verified can write a row after the outbox left the publication, with a
// time before that check. Read before the catalog snapshot of a check, like
// its LSN. hidden reports sessions of other roles that pg_stat_activity hid
// (without pg_read_all_stats): their transactions are not allowed for.
func openSince(ctx context.Context, conn *pgx.Conn) (time.Time, bool, error) {
	var at time.Time
	var hidden bool
	err := conn.QueryRow(ctx, `SELECT least(clock_timestamp(), min(xact_start)), coalesce(bool_or(query = '<insufficient privilege>'), false)
		FROM pg_catalog.pg_stat_activity
		WHERE datid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
		  AND coalesce(backend_type, '') NOT IN ('walsender', 'autovacuum worker')`).Scan(&at, &hidden)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("catalog: read the oldest open transaction (pg_stat_activity): %w", err)
	}
	return at, hidden, nil
}

func (c *Catalog) connLocked(ctx context.Context) (*pgx.Conn, error) {
	if c.closed {
		return nil, ErrClosed
	}
	if c.conn != nil && !c.conn.IsClosed() {
		return c.conn, nil
	}
	cctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	conn, err := c.cfg.Connect(cctx)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "57P03" && !c.down { // cannot_connect_now: shutting down
			c.down = true
			c.logger.Warn("PostgreSQL is shutting down and waits for outbox-cdc to confirm what it sent: confirming without verifying publication membership until the server is back, when it is verified against the membership before the shutdown",
				"verified", decoder.FormatLSN(c.lsn))
			if c.hooks.ShuttingDown != nil {
				c.hooks.ShuttingDown()
			}
		}
		return nil, &Unavailable{Err: err}
	}
	c.down = false
	c.conn = conn
	return conn, nil
}

// failedLocked classifies a failed query, once, where PostgreSQL's error
// enters: with the connection lost, a timeout or an error a new attempt may
// not meet (pgerr.Transient) it is Unavailable, and the connection is
// dropped; otherwise it is a permanent *QueryError.
func (c *Catalog) failedLocked(err error) error {
	if c.conn == nil || c.conn.IsClosed() || errors.Is(err, context.DeadlineExceeded) || pgerr.Transient(err) {
		if c.conn != nil {
			c.conn.Close(context.Background())
			c.conn = nil
		}
		return &Unavailable{Err: err}
	}
	return &QueryError{Err: err}
}

// ErrClosed is returned by a Catalog used after Close. It is permanent.
var ErrClosed error = closedError{}

type closedError struct{}

func (closedError) Error() string   { return "catalog: closed" }
func (closedError) Permanent() bool { return true }

// Unavailable is a catalog lookup that could not reach the server.
// Reconnecting may fix it: the replication stream reconnects and the server
// sends the Relation message again.
type Unavailable struct{ Err error }

func (e *Unavailable) Error() string { return e.Err.Error() }
func (e *Unavailable) Unwrap() error { return e.Err }

// Permanent reports false: reconnecting may fix the error (see
// sink.IsPermanent).
func (e *Unavailable) Permanent() bool { return false }

// QueryError is a catalog query the server refused in a way a new attempt
// meets again (a missing privilege on the catalog, say): the stream stops
// with it.
type QueryError struct{ Err error }

func (e *QueryError) Error() string { return e.Err.Error() }
func (e *QueryError) Unwrap() error { return e.Err }

// Permanent reports true (see sink.IsPermanent).
func (e *QueryError) Permanent() bool { return true }
