// Package outbox is the producer side for Go services: it writes an event
// as a row of the outbox table inside the caller's own transaction (a
// pgx.Tx or a *sql.Tx), so that the event is published if and only if the
// transaction commits. outbox-cdc then streams the row to the brokers.
//
// Every CloudEvents attribute is checked before the insert, with the same
// rules outbox-cdc's decoder applies to the row (source a URI-reference,
// dataschema an absolute URI, a media type, extension names of a-z and
// 0-9 and not reserved, JSON data valid in the CloudEvents JSON format), so
// that a bad event fails in the application, with an *Error naming the
// attribute, instead of stopping or dead-lettering in the relay.
//
// The table and its column names follow outbox-cdc's configuration
// (outbox.tables[].columns): a config.Columns converts to Columns, since
// the fields are the same.
//
//	w, err := outbox.New(outbox.Table{})           // public.outbox, default columns
//	tx, _ := pool.Begin(ctx)
//	tx.Exec(ctx, "UPDATE orders SET status = 'paid' WHERE id = $1", 42)
//	id, err := w.Write(ctx, tx, outbox.Event{
//		Type: "com.example.order.paid", Source: "/shop/orders",
//		AggregateType: "order", AggregateID: "42",
//		Data: map[string]any{"order_id": 42, "amount": 19.90},
//	})
//	tx.Commit(ctx)
package outbox

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// Columns maps event fields to the table's columns, as outbox-cdc's
// outbox.tables[].columns does. An empty field takes the default column
// name shown; "-" means the table has no such column.
type Columns struct {
	ID              string // default "id"; required
	Type            string // default "type"; required
	Source          string // default "source"
	Subject         string // default "subject"
	AggregateType   string // default "aggregate_type"
	AggregateID     string // default "aggregate_id"
	Data            string // default "data"
	DataContentType string // default "datacontenttype"
	DataSchema      string // default "dataschema"
	Headers         string // default "headers"
	Time            string // default "created_at"
}

// Table is one outbox table.
type Table struct {
	// Name is the table, schema-qualified. Default "public.outbox"; an
	// unqualified name means schema public.
	Name string
	// Columns maps the columns; zero fields take the defaults.
	Columns Columns
	// DefaultSource is what outbox-cdc puts in events whose source is
	// empty (outbox.tables[].default_source): with it set, Event.Source may
	// be empty. Default none: Source is required.
	DefaultSource string
}

// Event is one event to write. Type is required, and Source unless the
// table has a DefaultSource.
type Event struct {
	// ID is the event id. Default: the id column's default
	// (gen_random_uuid() in outbox-cdc's table), returned by Write.
	ID string
	// Type is the CloudEvents type, e.g. "com.example.order.paid".
	Type string
	// Source is the CloudEvents source, a URI-reference: "/shop/orders".
	Source string
	// Subject, optional.
	Subject string
	// AggregateType feeds outbox-cdc's destination templates
	// ("outbox.{{.AggregateType}}"), optional.
	AggregateType string
	// AggregateID is the partition key: events of one aggregate keep their
	// order in every broker. Optional.
	AggregateID string
	// Data is the payload: []byte or json.RawMessage as is, anything else
	// encoded with encoding/json. nil: no data.
	Data any
	// DataContentType, default application/json (the column's default).
	DataContentType string
	// DataSchema, optional, an absolute URI.
	DataSchema string
	// Headers become extension attributes (traceparent, tenant, ...).
	Headers map[string]string
	// Time is the event's time. Default the column's default (now()), or
	// the commit time when the table has no time column.
	Time time.Time
}

// Error is an event that outbox-cdc could not turn into a valid CloudEvent,
// refused before the insert.
type Error struct {
	Field  string // the Event field
	Reason string
}

func (e *Error) Error() string { return "outbox: event " + e.Field + ": " + e.Reason }

// Writer writes events into one outbox table. It holds no connection and
// is safe for concurrent use.
type Writer struct {
	t     Table
	table string // quoted
}

// New checks t and returns its Writer.
func New(t Table) (*Writer, error) {
	if t.Name == "" {
		t.Name = "public.outbox"
	}
	parts := strings.Split(t.Name, ".")
	if len(parts) == 1 {
		parts = []string{"public", parts[0]}
	}
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("outbox: table %q: want schema.table or table", t.Name)
	}
	// The defaults are the decoder's, so a row written here reads back as
	// the event it was.
	t.Columns = Columns(decoder.Columns(t.Columns).WithDefaults())
	if t.Columns.ID == "-" || t.Columns.Type == "-" {
		return nil, fmt.Errorf("outbox: table %s: the id and type columns are required", t.Name)
	}
	return &Writer{t: t, table: pgx.Identifier(parts).Sanitize()}, nil
}

// Validate checks e as outbox-cdc's decoder will check the row. It returns
// an *Error naming the first field at fault.
func (w *Writer) Validate(e Event) error {
	_, _, err := w.build(e)
	return err
}

// PgxQuerier is a pgx transaction (pgx.Tx); a *pgx.Conn or *pgxpool.Pool
// also fits, but then the event is not tied to a transaction of yours.
type PgxQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SQLQuerier is a database/sql transaction (*sql.Tx) on a PostgreSQL
// driver (pgx's stdlib, lib/pq).
type SQLQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Write validates e and inserts it in tx; it returns the event id. The
// event is published when tx commits, and never if it rolls back.
func (w *Writer) Write(ctx context.Context, tx PgxQuerier, e Event) (string, error) {
	q, args, err := w.build(e)
	if err != nil {
		return "", err
	}
	var id string
	if err := tx.QueryRow(ctx, q, args...).Scan(&id); err != nil {
		return "", fmt.Errorf("outbox: inserting into %s: %w", w.table, err)
	}
	return id, nil
}

// WriteSQL is Write for database/sql.
func (w *Writer) WriteSQL(ctx context.Context, tx SQLQuerier, e Event) (string, error) {
	q, args, err := w.build(e)
	if err != nil {
		return "", err
	}
	var id string
	if err := tx.QueryRowContext(ctx, q, args...).Scan(&id); err != nil {
		return "", fmt.Errorf("outbox: inserting into %s: %w", w.table, err)
	}
	return id, nil
}

// build checks e and returns the INSERT and its arguments.
func (w *Writer) build(e Event) (string, []any, error) {
	c := w.t.Columns
	var cols []string
	var args []any
	set := func(field, col string, v any) error {
		if col == "-" {
			return &Error{Field: field, Reason: fmt.Sprintf("table %s has no column for it (columns.%s is \"-\")", w.t.Name, strings.ToLower(field))}
		}
		cols = append(cols, pgx.Identifier{col}.Sanitize())
		args = append(args, v)
		return nil
	}
	if e.Type == "" {
		return "", nil, &Error{Field: "Type", Reason: "is required"}
	}
	if e.ID != "" {
		if err := set("ID", c.ID, e.ID); err != nil {
			return "", nil, err
		}
	}
	if err := set("Type", c.Type, e.Type); err != nil {
		return "", nil, err
	}
	switch {
	case e.Source == "" && w.t.DefaultSource == "":
		return "", nil, &Error{Field: "Source", Reason: "is required (the table has no default source)"}
	case e.Source != "":
		if r := decoder.CheckSource(e.Source); r != "" {
			return "", nil, &Error{Field: "Source", Reason: r}
		}
		if err := set("Source", c.Source, e.Source); err != nil {
			return "", nil, err
		}
	}
	for _, f := range []struct{ field, col, v string }{
		{"Subject", c.Subject, e.Subject}, {"AggregateType", c.AggregateType, e.AggregateType}, {"AggregateID", c.AggregateID, e.AggregateID}} {
		if f.v != "" {
			if err := set(f.field, f.col, f.v); err != nil {
				return "", nil, err
			}
		}
	}
	if e.DataContentType != "" {
		if r := decoder.CheckMediaType(e.DataContentType); r != "" {
			return "", nil, &Error{Field: "DataContentType", Reason: r}
		}
		if err := set("DataContentType", c.DataContentType, e.DataContentType); err != nil {
			return "", nil, err
		}
	}
	if e.DataSchema != "" {
		if r := decoder.CheckDataSchema(e.DataSchema); r != "" {
			return "", nil, &Error{Field: "DataSchema", Reason: r}
		}
		if err := set("DataSchema", c.DataSchema, e.DataSchema); err != nil {
			return "", nil, err
		}
	}
	if e.Data != nil {
		var b []byte
		switch d := e.Data.(type) {
		case []byte:
			b = d
		case json.RawMessage:
			b = d
		default:
			var err error
			if b, err = json.Marshal(d); err != nil {
				return "", nil, &Error{Field: "Data", Reason: "cannot be encoded as JSON: " + err.Error()}
			}
		}
		var v any = b
		if event.IsJSONContentType(e.DataContentType) {
			if r := decoder.CheckJSON(b); r != "" {
				return "", nil, &Error{Field: "Data", Reason: "is not valid JSON in the CloudEvents JSON format (datacontenttype is JSON): " + r}
			}
			v = string(b)
		} else if utf8.Valid(b) {
			v = string(b)
		}
		if err := set("Data", c.Data, v); err != nil {
			return "", nil, err
		}
	}
	if len(e.Headers) > 0 {
		for name, val := range e.Headers {
			if r := decoder.CheckExtension(name, val); r != "" {
				return "", nil, &Error{Field: "Headers", Reason: r}
			}
		}
		h, _ := json.Marshal(e.Headers)
		if err := set("Headers", c.Headers, string(h)); err != nil {
			return "", nil, err
		}
	}
	if !e.Time.IsZero() {
		if y := e.Time.Year(); y < 1 || y > 9999 {
			return "", nil, &Error{Field: "Time", Reason: fmt.Sprintf("year %d cannot be written as an RFC 3339 time", y)}
		}
		if err := set("Time", c.Time, e.Time); err != nil {
			return "", nil, err
		}
	}
	ph := make([]string, len(cols))
	for i := range ph {
		ph[i] = fmt.Sprintf("$%d", i+1)
	}
	q := "INSERT INTO " + w.table + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(ph, ", ") + ") RETURNING " +
		pgx.Identifier{c.ID}.Sanitize() + "::text"
	return q, args, nil
}
