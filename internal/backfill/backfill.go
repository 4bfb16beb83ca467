package backfill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/dlq"
	"github.com/outbox-cdc/outbox-cdc/internal/pgconn"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
)

// Defaults.
const (
	// DefaultBatchSize is the number of rows read, published and
	// acknowledged per page.
	DefaultBatchSize = 1000
	// DefaultProgressEvery is how often a progress line is written.
	DefaultProgressEvery = 5 * time.Second
)

// ErrUsage is matched (errors.Is) by errors in Options: no selection, or
// two of them.
var ErrUsage = errors.New("backfill: invalid options")

// Options say which rows to re-send, where, and how.
//
// Exactly one selection is given: a time range on each table's time column
// (From and/or To: From <= time < To), Since (every row whose time is at or
// after it: From without To), or IDs. Times are any text PostgreSQL reads
// as a timestamptz ("2026-05-01 10:00:00+02", RFC 3339); one without a zone
// is UTC. Rows whose time column is NULL are only selected by IDs.
type Options struct {
	Since, From, To string
	// IDs are values of the id column (as text), in any configured table.
	IDs []string
	// Table limits the backfill to one configured outbox table (an
	// unqualified name means schema public). Default: every table.
	Table string
	// Sinks limits the backfill to these configured sinks (their routes
	// still apply). Default: every sink.
	Sinks []string
	// DryRun reads and maps the rows and writes what would be published to
	// Out, without connecting to any sink or dead-letter store.
	DryRun bool
	// BatchSize is the number of rows per page. Default DefaultBatchSize.
	BatchSize int
	// ProgressEvery is how often a progress line is written to Out.
	// Default DefaultProgressEvery.
	ProgressEvery time.Duration
	// Out receives the plan, progress lines and, in a dry run, one line
	// per event. Default: discarded.
	Out io.Writer
	// Logger receives the sinks' state changes (a broker down, up again).
	// Default: discarded.
	Logger *slog.Logger
}

// Validate checks the selection. Its errors match ErrUsage.
func (o Options) Validate() error {
	timed := o.Since != "" || o.From != "" || o.To != ""
	switch {
	case o.Since != "" && (o.From != "" || o.To != ""):
		return fmt.Errorf("%w: give --since or --from/--to, not both", ErrUsage)
	case timed && len(o.IDs) > 0:
		return fmt.Errorf("%w: give a time selection (--since, --from/--to) or --ids, not both", ErrUsage)
	case !timed && len(o.IDs) == 0:
		return fmt.Errorf("%w: choose the rows: --since TIME, --from TIME --to TIME, or --ids ID,...", ErrUsage)
	case o.BatchSize < 0:
		return fmt.Errorf("%w: batch size %d: must be positive", ErrUsage, o.BatchSize)
	}
	for _, id := range o.IDs {
		if id == "" {
			return fmt.Errorf("%w: --ids has an empty id", ErrUsage)
		}
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = DefaultProgressEvery
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Summary is what a backfill did.
type Summary struct {
	DryRun bool
	// Read counts the rows read; Events the rows that became events.
	Read, Events int64
	// Invalid counts rows that could not become events and were stored as
	// dead letters (outbox.on_invalid: dead-letter).
	Invalid int64
	// NotFound lists the IDs found in no selected table.
	NotFound []string
	// Sinks has one entry per selected sink, in config order.
	Sinks []SinkSummary
}

// SinkSummary is one sink's share.
type SinkSummary struct {
	Name, Type string
	// Routed counts the events its route took; Acked those the broker
	// acknowledged, of which Duplicates it reported as already held.
	Routed, Acked, Duplicates int64
}

// Report writes the summary for a person.
func (s Summary) Report(w io.Writer) {
	if s.DryRun {
		fmt.Fprintf(w, "backfill (dry run): %d rows read, %d events would be published, %d invalid\n", s.Read, s.Events, s.Invalid)
	} else {
		fmt.Fprintf(w, "backfill: %d rows read, %d events, %d invalid rows stored as dead letters\n", s.Read, s.Events, s.Invalid)
	}
	for _, k := range s.Sinks {
		if s.DryRun {
			fmt.Fprintf(w, "  sink %s (%s): %d events would be published\n", k.Name, k.Type, k.Routed)
			continue
		}
		fmt.Fprintf(w, "  sink %s (%s): %d routed, %d acknowledged", k.Name, k.Type, k.Routed, k.Acked)
		if k.Duplicates > 0 {
			fmt.Fprintf(w, ", %d already held (dropped by the broker's dedup)", k.Duplicates)
		}
		fmt.Fprintln(w)
	}
	if len(s.NotFound) > 0 {
		fmt.Fprintf(w, "  %d ids not found in any selected table: %s\n", len(s.NotFound), strings.Join(s.NotFound, ", "))
	}
}

// runner is one backfill.
type runner struct {
	cfg   *config.Config
	opts  Options
	conn  *pgx.Conn
	dec   *decoder.Decoder
	outs  []*output
	store *dlq.Store // nil unless outbox.on_invalid is dead-letter
	sum   Summary

	lastProgress time.Time
}

// Run backfills what opts select from the outbox tables of cfg into its
// sinks. It blocks until every event is acknowledged, the selection is
// exhausted, or it fails; the Summary counts what was done either way. It
// returns an error matching ErrUsage for bad options, ErrRedisEntryID for a
// Redis sink that cannot take old events, a *decoder.Error (wrapped) for an
// invalid row under the block policy, and a *sink.PermanentError (wrapped)
// naming the row a sink refused for good.
func Run(ctx context.Context, cfg *config.Config, opts Options) (Summary, error) {
	if err := opts.Validate(); err != nil {
		return Summary{}, err
	}
	r := &runner{cfg: cfg, opts: opts.withDefaults(), lastProgress: time.Now()}
	r.sum.DryRun = r.opts.DryRun
	tables, err := r.tables()
	if err != nil {
		return r.sum, err
	}
	if err := r.selectSinks(); err != nil {
		return r.sum, err
	}
	if r.dec, err = decoder.New(wiring.Decoder(cfg), r.opts.Logger); err != nil {
		return r.sum, err
	}
	if r.conn, err = connect(ctx, cfg); err != nil {
		return r.sum, err
	}
	defer r.conn.Close(context.Background())
	sel, err := r.resolve(ctx)
	if err != nil {
		return r.sum, err
	}
	if !r.opts.DryRun {
		if cfg.Outbox.OnInvalid == "dead-letter" {
			if r.store, err = dlq.Open(ctx, wiring.Postgres(cfg), cfg.DeadLetter.Table); err != nil {
				return r.sum, err
			}
			defer r.store.Close()
		}
		defer r.closeSinks()
		if err := r.openSinks(ctx); err != nil {
			return r.sum, err
		}
	}
	r.plan()
	notFound := map[string]int{}
	for _, t := range tables {
		missing, err := r.table(ctx, t, sel)
		r.collect()
		if err != nil {
			return r.sum, err
		}
		for _, id := range missing {
			notFound[id]++
		}
	}
	for _, id := range r.opts.IDs {
		if notFound[id] == len(tables) && !slices.Contains(r.sum.NotFound, id) {
			r.sum.NotFound = append(r.sum.NotFound, id)
		}
	}
	return r.sum, nil
}

// tables returns the configured tables the backfill reads.
func (r *runner) tables() ([]decoder.Table, error) {
	all := wiring.Decoder(r.cfg).WithDefaults().Tables
	if r.opts.Table == "" {
		return all, nil
	}
	want := r.opts.Table
	if !strings.Contains(want, ".") {
		want = "public." + want
	}
	for _, t := range all {
		if t.Name == want {
			return []decoder.Table{t}, nil
		}
	}
	names := make([]string, len(all))
	for i, t := range all {
		names[i] = t.Name
	}
	return nil, fmt.Errorf("backfill: %s is not a configured outbox table (configured: %s)", r.opts.Table, strings.Join(names, ", "))
}

// connect opens the SQL connection the rows are read on, with the output
// settings of the replication connection, so that every value reads as
// pgoutput writes it, and as UTF-8 whatever the database's encoding, as the
// decoder expects of text it did not convert itself.
func connect(ctx context.Context, cfg *config.Config) (*pgx.Conn, error) {
	return wiring.Postgres(cfg).Connect(ctx, pgconn.Options{Role: pgconn.RoleBackfill, Params: pgconn.OutputParams()})
}

// selection is the resolved row selection.
type selection struct {
	from, to string // canonical timestamptz text; "" for no bound
	ids      []string
}

// resolve has the server read the times, so that any timestamptz text works
// and a wrong one is named.
func (r *runner) resolve(ctx context.Context) (selection, error) {
	sel := selection{ids: r.opts.IDs}
	for _, b := range []struct {
		name string
		in   string
		out  *string
	}{{"since", r.opts.Since, &sel.from}, {"from", r.opts.From, &sel.from}, {"to", r.opts.To, &sel.to}} {
		if b.in == "" {
			continue
		}
		if err := r.conn.QueryRow(ctx, "SELECT ($1::text)::timestamptz::text", b.in).Scan(b.out); err != nil {
			return sel, fmt.Errorf("backfill: --%s %q is not a time PostgreSQL can read (for example 2026-05-01T10:00:00Z): %w", b.name, b.in, err)
		}
	}
	if sel.from != "" && sel.to != "" {
		var empty bool
		if err := r.conn.QueryRow(ctx, "SELECT ($1::text)::timestamptz >= ($2::text)::timestamptz", sel.from, sel.to).Scan(&empty); err != nil {
			return sel, fmt.Errorf("backfill: %w", err)
		}
		if empty {
			return sel, fmt.Errorf("%w: --from %s is not before --to %s", ErrUsage, sel.from, sel.to)
		}
	}
	return sel, nil
}

// progress writes a progress line at most every ProgressEvery; done
// writes the table's last one.
func (r *runner) progress(table string, done bool) {
	now := time.Now()
	if !done && now.Sub(r.lastProgress) < r.opts.ProgressEvery {
		return
	}
	r.lastProgress = now
	r.collect()
	var acked int64
	for _, k := range r.sum.Sinks {
		acked += k.Acked
	}
	state := "so far"
	if done {
		state = "done with " + table
	}
	if r.opts.DryRun {
		fmt.Fprintf(r.opts.Out, "backfill: %s: %d rows read (%s)\n", table, r.sum.Read, state)
		return
	}
	fmt.Fprintf(r.opts.Out, "backfill: %s: %d rows read, %d acknowledgements from the sinks (%s)\n", table, r.sum.Read, acked, state)
}

// event handles one mapped row: routes it, or writes it in a dry run.
func (r *runner) event(e *event.Event) {
	r.sum.Events++
	var names []string
	n := 0
	for _, o := range r.outs {
		if !o.sc.Route.Sink().Match(e) {
			continue
		}
		n++
		o.routed++
		names = append(names, o.sc.Name)
		if !r.opts.DryRun {
			o.pending = append(o.pending, e)
		}
	}
	if r.opts.DryRun {
		to := "no sink (no route matches)"
		if n > 0 {
			to = strings.Join(names, ", ")
		}
		t := "-"
		if !e.Time.IsZero() {
			t = string(event.AppendTime(nil, e.Time))
		}
		fmt.Fprintf(r.opts.Out, "would publish %s %s (type %s, source %s, time %s) to %s\n", e.Table, e.ID, e.Type, e.Source, t, to)
	}
}

// invalid applies outbox.on_invalid to a row that cannot become an event.
func (r *runner) invalid(ctx context.Context, derr *decoder.Error) error {
	if r.cfg.Outbox.OnInvalid != "dead-letter" {
		return fmt.Errorf("backfill stopped at an invalid row (outbox.on_invalid is block; the rows before it were published): %w", derr)
	}
	r.sum.Invalid++
	if r.opts.DryRun {
		fmt.Fprintf(r.opts.Out, "would store as a dead letter: %v\n", derr)
		return nil
	}
	if err := r.store.PutRow(ctx, derr); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	r.opts.Logger.Warn("row stored as a dead letter", "err", derr.Error())
	return nil
}
