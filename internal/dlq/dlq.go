// Package dlq is the dead-letter store: a PostgreSQL table (created by
// `outbox-cdc setup`) in the outbox's own database, holding the events a sink
// could not take, and the outbox rows that could not become events, when the
// policy says to set them aside rather than block.
//
// Writes are idempotent. An event a sink could not take is known by the sink,
// its CloudEvents identity (source and id) and its commit LSN; an input that
// could not be decoded by its commit LSN and its position in the transaction.
// Stored again after a crash, either is stored once, with its attempts
// counted. Events are stored as their JSON bytes, exactly.
package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	pgc "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
	"github.com/outbox-cdc/outbox-cdc/internal/pgerr"
)

// Status of a dead letter.
const (
	StatusPending   = "pending"
	StatusReplayed  = "replayed"
	StatusDiscarded = "discarded"
)

// DecoderSink is the sink name recorded for rows that could not be decoded.
const DecoderSink = ""

// ErrNotFound is returned for an id the store does not hold.
var ErrNotFound = errors.New("dlq: no such dead letter")

// Letter is one stored dead letter.
type Letter struct {
	ID            int64              `json:"id"`
	Sink          string             `json:"sink"`
	EventID       string             `json:"event_id"`
	Source        string             `json:"event_source,omitempty"` // with EventID, the event's identity
	Table         string             `json:"source_table"`
	AggregateType string             `json:"aggregate_type,omitempty"`
	CommitLSN     string             `json:"commit_lsn"`
	Position      *int               `json:"tx_position,omitempty"` // position in the transaction; nil in letters from before v2 of the table
	Event         json.RawMessage    `json:"event,omitempty"`
	Raw           map[string]*string `json:"raw,omitempty"`
	Error         string             `json:"error"`
	Attempts      int                `json:"attempts"`
	FirstFailedAt time.Time          `json:"first_failed_at"`
	LastFailedAt  time.Time          `json:"last_failed_at"`
	Status        string             `json:"status"`
	ResolvedAt    *time.Time         `json:"resolved_at,omitempty"`
	ResolvedBy    *string            `json:"resolved_by,omitempty"`
}

// Store reads and writes the dead-letter table. Safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	table string // quoted
	name  string // schema-qualified, as configured
}

// Open returns a store over a pool of connections to the database pg names,
// in client_encoding UTF8 (letters are UTF-8 whatever the database's
// encoding). table is schema-qualified.
func Open(ctx context.Context, pg pgc.Config, table string) (*Store, error) {
	pool, err := pg.Pool(ctx, pgc.Options{})
	if err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	schema, name, _ := strings.Cut(table, ".")
	return &Store{pool: pool, table: pgx.Identifier{schema, name}.Sanitize(), name: table}, nil
}

// Close closes the connections.
func (s *Store) Close() { s.pool.Close() }

// PutEvent stores an event sink could not take, with the error and the number
// of attempts made. The event is kept as its JSON bytes, exactly: nothing in
// it can make the database refuse the letter. Storing the same event (same
// source, id and commit LSN) for the same sink again counts the attempts
// instead of adding a row. It blocks until the row is committed.
func (s *Store) PutEvent(ctx context.Context, sink string, e *event.Event, cause error, attempts int, firstFailed time.Time) error {
	body := e.AppendJSON(nil)
	err := s.put(ctx, func(txt func(string) string) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` (sink, event_id, event_source, source_table, commit_lsn, tx_position, event, error, attempts, first_failed_at, aggregate_type)
			VALUES ($1, $2, $3, $4, $5::pg_lsn, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (sink, event_source, event_id, commit_lsn) WHERE sink <> '' DO UPDATE
			SET attempts = `+s.table+`.attempts + EXCLUDED.attempts, error = EXCLUDED.error, last_failed_at = now(), status = 'pending'`,
			txt(sink), txt(e.ID), txt(e.Source), txt(e.Table), decoder.FormatLSN(e.CommitLSN), e.Seq, body, txt(cause.Error()),
			max(attempts, 1), firstFailed, txt(e.AggregateType))
		return err
	})
	if err != nil {
		return fmt.Errorf("dlq: store event %s (source %s) for sink %s: %w", e.ID, e.Source, sink, s.mapError(err))
	}
	return nil
}

// PutRow stores an outbox row (or message) that could not become an event.
// The input is known by its transaction's commit LSN and its position in
// it: two bad inputs are two letters, and the same input stored again after a
// restart counts the attempts instead of adding a row.
func (s *Store) PutRow(ctx context.Context, derr *decoder.Error) error {
	raw, err := json.Marshal(derr.Raw)
	if err != nil {
		return err
	}
	err = s.put(ctx, func(txt func(string) string) error {
		_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` (sink, event_id, source_table, commit_lsn, tx_position, raw, error)
			VALUES ('', $1, $2, $3::pg_lsn, $4, $5, $6)
			ON CONFLICT (commit_lsn, tx_position) WHERE sink = '' DO UPDATE
			SET attempts = `+s.table+`.attempts + 1, last_failed_at = now()`,
			txt(derr.RowID), txt(derr.Table), decoder.FormatLSN(derr.LSN), derr.Pos, raw, txt(derr.Error()))
		return err
	})
	if err != nil {
		return fmt.Errorf("dlq: store row %s of %s (position %d in transaction %s): %w", derr.RowID, derr.Table, derr.Pos, decoder.FormatLSN(derr.LSN), s.mapError(err))
	}
	return nil
}

// Error is a refusal of the dead-letter table that a new attempt meets
// again until someone acts: the table is missing, older than this
// outbox-cdc, or not writable by the role. Fix says what to do. It is
// permanent (see sink.IsPermanent); Keep still retries it, since the fix
// needs no restart.
type Error struct {
	Table string // the dead-letter table, schema-qualified
	Fix   string
	Err   error
}

func (e *Error) Error() string   { return e.Err.Error() + ": " + e.Fix }
func (e *Error) Unwrap() error   { return e.Err }
func (e *Error) Permanent() bool { return true }

// mapError maps PostgreSQL's refusal of a write to the table, by SQLSTATE,
// to an *Error that says what to do; other errors are returned as they are.
func (s *Store) mapError(err error) error {
	var fix string
	switch pgerr.Code(err) {
	case "42P01": // undefined_table
		fix = "the dead-letter table " + s.name + " does not exist: run `outbox-cdc setup`"
	case "42703", "42P10": // undefined_column; no unique index for ON CONFLICT
		fix = "the dead-letter table " + s.name + " is older than this outbox-cdc: run `outbox-cdc setup` to upgrade it"
	case "42501": // insufficient_privilege
		fix = "the role cannot write the dead-letter table " + s.name + ": grant SELECT, INSERT, UPDATE on it and USAGE on its id sequence (docs/security.md)"
	default:
		return err
	}
	return &Error{Table: s.name, Fix: fix, Err: err}
}

// put runs insert with the letter's text columns as they are; should the
// database refuse a text value (a NUL character, or a character its encoding
// cannot hold: SQLSTATE class 22), it tries once more with every text value
// in printable ASCII. The same input is refused the same way each time, so a
// letter stored again still finds its row. The event itself is bytes and
// never refused.
func (s *Store) put(ctx context.Context, insert func(txt func(string) string) error) error {
	err := insert(plainText)
	if strings.HasPrefix(pgerr.Code(err), "22") {
		err = insert(asciiText)
	}
	return err
}

// plainText makes s valid UTF-8 without NUL characters, which no PostgreSQL
// text value can hold.
func plainText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\ufffd"), "\x00", `\u0000`)
}

// asciiText escapes everything outside printable ASCII the way Go quotes
// strings, for a database whose encoding cannot hold the text as it is.
func asciiText(s string) string {
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

const columns = `id, sink, event_id, event_source, source_table, aggregate_type, commit_lsn::text, tx_position, event, raw, error, attempts,
	first_failed_at, last_failed_at, status, resolved_at, resolved_by`

func scan(row pgx.Row) (Letter, error) {
	var l Letter
	var ev, raw []byte
	err := row.Scan(&l.ID, &l.Sink, &l.EventID, &l.Source, &l.Table, &l.AggregateType, &l.CommitLSN, &l.Position, &ev, &raw, &l.Error, &l.Attempts,
		&l.FirstFailedAt, &l.LastFailedAt, &l.Status, &l.ResolvedAt, &l.ResolvedBy)
	if err != nil {
		return l, err
	}
	l.Event = ev
	if raw != nil {
		if err := json.Unmarshal(raw, &l.Raw); err != nil {
			return l, err
		}
	}
	return l, nil
}

// Filter selects letters for List.
type Filter struct {
	Sink   string // "" for every sink
	Status string // "" for every status
	Limit  int    // 0 for 1000
	// After pages: only letters with a larger id. Default 0: from the first.
	After int64
	// Query selects letters whose event id is Query, or whose error
	// contains it (case-insensitive). Default "": every letter.
	Query string
}

// List returns letters, oldest first.
func (s *Store) List(ctx context.Context, f Filter) ([]Letter, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM `+s.table+`
		WHERE ($1 = '' OR sink = $1) AND ($2 = '' OR status = $2) AND id > $4
		AND ($5 = '' OR event_id = $5 OR strpos(lower(error), lower($5)) > 0) ORDER BY id LIMIT $3`, f.Sink, f.Status, f.Limit, f.After, f.Query)
	if err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	defer rows.Close()
	var out []Letter
	for rows.Next() {
		l, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("dlq: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Get returns one letter.
func (s *Store) Get(ctx context.Context, id int64) (Letter, error) {
	l, err := scan(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM `+s.table+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return l, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return l, err
}

// Resolve marks a letter replayed or discarded, by whom.
func (s *Store) Resolve(ctx context.Context, id int64, status, by string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE `+s.table+` SET status = $2, resolved_at = now(), resolved_by = $3 WHERE id = $1`, id, status, by)
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	return nil
}

// Failed records another failed attempt (a replay that failed again).
func (s *Store) Failed(ctx context.Context, id int64, cause error) error {
	_, err := s.pool.Exec(ctx, `UPDATE `+s.table+` SET attempts = attempts + 1, last_failed_at = now(), error = $2, status = 'pending' WHERE id = $1`, id, cause.Error())
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	return nil
}

// Count returns the pending letters per sink.
func (s *Store) Count(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT sink, count(*) FROM `+s.table+` WHERE status = 'pending' GROUP BY sink`)
	if err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	out := map[string]int64{}
	var sink string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&sink, &n}, func() error { out[sink] = n; return nil })
	return out, err
}
