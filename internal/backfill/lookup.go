package backfill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/pgconn"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
)

// Row is one outbox row read by its id, and the event a backfill (and the
// stream) makes of it.
type Row struct {
	// Table is the configured outbox table that holds the row.
	Table string
	// Columns and Values are the row's columns in table order and their
	// text (nil for NULL).
	Columns []string
	Values  []*string
	// Event is the row's event, without the pglsn extension (the commit
	// LSN is in the WAL only); nil when Invalid is set.
	Event *event.Event
	// Invalid says why the row cannot become an event (a *decoder.Error).
	Invalid error
}

// ConnectOptions are the settings of a connection Lookup reads on: the
// output settings of the replication connection, as backfill reads rows.
func ConnectOptions() pgconn.Options {
	return pgconn.Options{Role: pgconn.RoleBackfill, Params: pgconn.OutputParams()}
}

// Lookup reads the rows whose id column is id in the configured outbox
// tables (only table when it is not empty; an unqualified name means
// schema public) and maps each as a backfill would. conn must have the
// settings of ConnectOptions. An id the id column's type cannot hold finds
// nothing. It blocks on the queries; safe for concurrent use with
// different connections.
func Lookup(ctx context.Context, cfg *config.Config, conn *pgx.Conn, table, id string) ([]Row, error) {
	r := &runner{cfg: cfg, opts: Options{Table: table, IDs: []string{id}}.withDefaults(), conn: conn}
	tables, err := r.tables()
	if err != nil {
		return nil, err
	}
	if r.dec, err = decoder.New(wiring.Decoder(cfg), slog.New(slog.DiscardHandler)); err != nil {
		return nil, err
	}
	var out []Row
	for _, t := range tables {
		src, err := r.describe(ctx, t)
		if err != nil {
			return nil, err
		}
		q, args := src.query(selection{ids: []string{id}}, false, 0)
		rows, err := conn.Query(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("backfill: read %s: %w", src.name, err)
		}
		found, err := lookupRows(src, rows)
		if err != nil {
			var pe interface{ SQLState() string }
			if errors.As(err, &pe) && (pe.SQLState() == "22P02" || pe.SQLState() == "22003") {
				continue // not a value of the id column's type
			}
			return nil, fmt.Errorf("backfill: read %s: %w", src.name, err)
		}
		out = append(out, found...)
	}
	return out, nil
}

func lookupRows(src *source, rows pgx.Rows) ([]Row, error) {
	defer rows.Close()
	n := len(src.cols)
	var out []Row
	for rows.Next() {
		raw := rows.RawValues()
		row := Row{Table: src.name, Columns: make([]string, n), Values: make([]*string, n)}
		for i := range n {
			row.Columns[i] = src.cols[i].Name
			if raw[i] != nil {
				s := string(raw[i])
				row.Values[i] = &s
			}
		}
		var commit time.Time
		if src.commitTS && raw[n+3] != nil {
			commit, _ = time.Parse("2006-01-02 15:04:05.999999Z07", string(raw[n+3]))
		}
		e, err := src.rows.Event(raw[:n], commit)
		if err != nil {
			row.Invalid = err
		} else {
			row.Event = e
		}
		out = append(out, row)
	}
	return out, rows.Err()
}
