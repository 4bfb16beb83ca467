package inbox

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outbox-cdc/outbox-cdc/handler"
)

// DefaultTable is the inbox table unless Config.Table names another.
const DefaultTable = "public.outbox_inbox"

//go:embed inbox.sql
var migrationSQL string

var migration = template.Must(template.New("inbox").Parse(migrationSQL))

// DB is what the inbox needs of a database handle: *pgxpool.Pool.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Execer runs SQL: *pgxpool.Pool, *pgx.Conn and pgx.Tx are.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Config configures an Inbox.
type Config struct {
	// Table is the inbox table, schema-qualified. Default
	// public.outbox_inbox; an unqualified name means schema public.
	Table string
}

// Inbox is the PostgreSQL inbox. It implements handler.Store,
// handler.DeadLetters and handler.Pruner; safe for concurrent use.
type Inbox struct {
	db    DB
	table string // quoted, schema-qualified

	claim, park, replays, prune string
}

var (
	_ handler.Store       = (*Inbox)(nil)
	_ handler.DeadLetters = (*Inbox)(nil)
	_ handler.Pruner      = (*Inbox)(nil)
)

// names returns the quoted table and the bare name used for constraints.
func names(table string) (quoted, bare string, err error) {
	if table == "" {
		table = DefaultTable
	}
	parts := strings.Split(table, ".")
	if len(parts) == 1 {
		parts = []string{"public", parts[0]}
	}
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", fmt.Errorf("inbox: table %q: want schema.table or table", table)
	}
	return pgx.Identifier(parts).Sanitize(), parts[1], nil
}

// SQL returns the migration that creates the inbox table (default table
// when table is ""), for migration tools. Applying it twice is harmless.
func SQL(table string) (string, error) {
	q, bare, err := names(table)
	if err != nil {
		return "", err
	}
	name := func(suffix string) string { return pgx.Identifier{bare + suffix}.Sanitize() }
	var b strings.Builder
	if err := migration.Execute(&b, map[string]string{"Table": q, "StateCheck": name("_state_check"),
		"OpenIndex": name("_open_idx"), "UpdatedIndex": name("_updated_idx")}); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Migrate creates the inbox table and its indexes when missing.
func Migrate(ctx context.Context, db Execer, table string) error {
	s, err := SQL(table)
	if err != nil {
		return err
	}
	if _, err := db.Exec(ctx, s); err != nil {
		return fmt.Errorf("inbox: creating table %s: %w", table, err)
	}
	return nil
}

// New returns the inbox over db (usually a *pgxpool.Pool). The table must
// exist (Migrate).
func New(db DB, cfg Config) (*Inbox, error) {
	q, _, err := names(cfg.Table)
	if err != nil {
		return nil, err
	}
	return &Inbox{
		db:    db,
		table: q,
		claim: `INSERT INTO ` + q + ` AS i (consumer, source, id) VALUES ($1, $2, $3)
ON CONFLICT (consumer, source, id) DO UPDATE SET state = 'done', updated_at = now() WHERE i.state = 'replay'`,
		park: `INSERT INTO ` + q + ` AS i (consumer, source, id, state, attempts, reason, type, partition_key, event)
VALUES ($1, $2, $3, 'parked', $4, $5, $6, $7, $8)
ON CONFLICT (consumer, source, id) DO UPDATE SET state = 'parked', updated_at = now(), attempts = i.attempts + EXCLUDED.attempts,
  reason = EXCLUDED.reason, type = EXCLUDED.type, partition_key = EXCLUDED.partition_key, event = EXCLUDED.event
WHERE i.state IN ('parked', 'replay')`,
		replays: `SELECT event, partition_key, attempts, coalesce(reason, '') FROM ` + q + `
WHERE consumer = $1 AND state = 'replay' ORDER BY updated_at LIMIT $2`,
		prune: `DELETE FROM ` + q + ` WHERE ctid = ANY (ARRAY(SELECT ctid FROM ` + q + `
WHERE state IN ('done', 'discarded') AND updated_at < now() - $1::interval LIMIT 5000))`,
	}, nil
}

type txKey struct{}

// Tx returns the transaction the inbox runs the handler in: write the
// handler's effects through it so that they commit with the inbox row.
// It returns nil outside an inbox (a handler run without one).
func Tx(ctx context.Context) pgx.Tx {
	tx, _ := ctx.Value(txKey{}).(pgx.Tx)
	return tx
}

// Once implements handler.Store: one transaction that records the event
// and runs fn. It returns handler.ErrDuplicate when the event took effect
// before, is parked or was discarded.
func (i *Inbox) Once(ctx context.Context, consumer string, e *cloudevents.Event, fn func(context.Context) error) (err error) {
	tx, err := i.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("inbox: begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	tag, err := tx.Exec(ctx, i.claim, consumer, e.Source(), e.ID())
	if err != nil {
		return fmt.Errorf("inbox: recording %s: %w", i.table, err)
	}
	if tag.RowsAffected() == 0 {
		return handler.ErrDuplicate
	}
	if err := fn(context.WithValue(ctx, txKey{}, tx)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("inbox: commit: %w", err)
	}
	return nil
}

// Park implements handler.DeadLetters.
func (i *Inbox) Park(ctx context.Context, consumer string, p handler.Parked) error {
	b, err := json.Marshal(p.Event)
	if err != nil {
		return fmt.Errorf("inbox: encoding event %s: %w", p.Event.ID(), err)
	}
	_, err = i.db.Exec(ctx, i.park, consumer, p.Event.Source(), p.Event.ID(), p.Attempts, p.Reason, p.Event.Type(), p.Key, string(b))
	if err != nil {
		return fmt.Errorf("inbox: parking event %s in %s: %w", p.Event.ID(), i.table, err)
	}
	return nil
}

// Replays implements handler.DeadLetters.
func (i *Inbox) Replays(ctx context.Context, consumer string, limit int) ([]handler.Parked, error) {
	rows, err := i.db.Query(ctx, i.replays, consumer, limit)
	if err != nil {
		return nil, fmt.Errorf("inbox: reading replays from %s: %w", i.table, err)
	}
	var out []handler.Parked
	for rows.Next() {
		var raw []byte
		var key *string
		var p handler.Parked
		if err := rows.Scan(&raw, &key, &p.Attempts, &p.Reason); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &p.Event); err != nil {
			return nil, fmt.Errorf("inbox: a parked event in %s is not a CloudEvent: %w", i.table, err)
		}
		if key != nil {
			p.Key = *key
		} else {
			p.Key = handler.Key(&p.Event, "")
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Prune implements handler.Pruner: it deletes done and discarded rows last
// changed longer than age ago, in batches of 5,000, and returns how many.
func (i *Inbox) Prune(ctx context.Context, age time.Duration) (int64, error) {
	var total int64
	for {
		tag, err := i.db.Exec(ctx, i.prune, age)
		if err != nil {
			return total, fmt.Errorf("inbox: pruning %s: %w", i.table, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 5000 {
			return total, nil
		}
	}
}

// Entry is one row of the inbox, as List returns it.
type Entry struct {
	Consumer  string          `json:"consumer"`
	Source    string          `json:"source"`
	ID        string          `json:"id"`
	State     string          `json:"state"`
	UpdatedAt time.Time       `json:"updated_at"`
	Attempts  int             `json:"attempts"`
	Reason    string          `json:"reason,omitempty"`
	Type      string          `json:"type,omitempty"`
	Key       string          `json:"partition_key,omitempty"`
	Event     json.RawMessage `json:"event,omitempty"`
}

// Filter selects inbox rows for List. Empty fields select everything;
// States defaults to parked, replay and discarded (not done).
type Filter struct {
	Consumer string
	Source   string
	IDs      []string
	States   []string
	Limit    int // default 1000
}

// List returns the rows f selects, oldest change first.
func (i *Inbox) List(ctx context.Context, f Filter) ([]Entry, error) {
	if len(f.States) == 0 {
		f.States = []string{"parked", "replay", "discarded"}
	}
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	q := `SELECT consumer, source, id, state, updated_at, attempts, coalesce(reason, ''), coalesce(type, ''), coalesce(partition_key, ''), event
FROM ` + i.table + ` WHERE state = ANY($1) AND ($2 = '' OR consumer = $2) AND ($3 = '' OR source = $3) AND (cardinality($4::text[]) = 0 OR id = ANY($4))
ORDER BY updated_at, consumer, source, id LIMIT $5`
	ids := f.IDs
	if ids == nil {
		ids = []string{}
	}
	rows, err := i.db.Query(ctx, q, f.States, f.Consumer, f.Source, ids, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("inbox: listing %s: %w", i.table, err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var en Entry
		var ev []byte
		if err := rows.Scan(&en.Consumer, &en.Source, &en.ID, &en.State, &en.UpdatedAt, &en.Attempts, &en.Reason, &en.Type, &en.Key, &ev); err != nil {
			return nil, err
		}
		en.Event = ev
		out = append(out, en)
	}
	return out, rows.Err()
}

// ErrNotParked is returned by Replay and Discard for a row that is not
// parked (or, for Discard, marked for replay).
var ErrNotParked = errors.New("inbox: event is not parked")

// Replay marks the parked event (consumer, source, id) for replay: the
// consumer's replay loop runs it within handler.Config.ReplayInterval.
func (i *Inbox) Replay(ctx context.Context, consumer, source, id string) error {
	return i.set(ctx, "replay", []string{"parked", "discarded"}, consumer, source, id)
}

// Discard sets the parked event (consumer, source, id) aside for good: it
// is kept (until pruned) and skipped when delivered again.
func (i *Inbox) Discard(ctx context.Context, consumer, source, id string) error {
	return i.set(ctx, "discarded", []string{"parked", "replay"}, consumer, source, id)
}

func (i *Inbox) set(ctx context.Context, state string, from []string, consumer, source, id string) error {
	tag, err := i.db.Exec(ctx, `UPDATE `+i.table+` SET state = $1, updated_at = now() WHERE consumer = $2 AND source = $3 AND id = $4 AND state = ANY($5)`,
		state, consumer, source, id, from)
	if err != nil {
		return fmt.Errorf("inbox: %s: %w", i.table, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: consumer %q, source %q, id %q (want state %s)", ErrNotParked, consumer, source, id, strings.Join(from, " or "))
	}
	return nil
}
