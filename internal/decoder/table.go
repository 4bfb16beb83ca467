package decoder

import (
	"fmt"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// Column describes one column of a row read from an outbox table with SQL:
// its name and its type OID (pg_attribute.atttypid, which is what pgoutput
// sends in a Relation message).
type Column struct {
	Name string
	OID  uint32
}

// TableRows maps rows read from an outbox table itself (not from the WAL) to
// events with the same column mapping, validation, default source and
// extensions as streamed rows, so that a row makes the same event on both
// paths. Only what the WAL alone knows differs: the event has no commit LSN
// (CommitLSN 0, Seq counting the rows mapped) and therefore no pglsn
// extension.
//
// A TableRows shares its Decoder's state: use a Decoder of its own for table
// rows, never the one that decodes the stream. Not safe for concurrent use.
type TableRows struct {
	d   *Decoder
	rel *relation
	seq int
}

// TableRows returns the mapper for the configured outbox table (schema.table;
// an unqualified name means schema public) whose columns, in order, are cols:
// every column pgoutput would send (not dropped, not generated).
//
// A table whose columns cannot be mapped (no id or type column, a time
// column of a type other than timestamptz, timestamp or date) is not an
// error here: like a streamed row, each row then fails with an *Error naming
// the table and the column.
func (d *Decoder) TableRows(table string, cols []Column) (*TableRows, error) {
	name := table
	if _, ok := d.tables[name]; !ok {
		name = "public." + table
	}
	t, ok := d.tables[name]
	if !ok {
		return nil, fmt.Errorf("decoder: %s is not a configured outbox table", table)
	}
	rel := &relation{name: t.Name, table: t}
	for _, c := range cols {
		rel.cols = append(rel.cols, relColumn{name: c.Name, oid: c.OID})
	}
	d.mapColumns(rel)
	return &TableRows{d: d, rel: rel}, nil
}

// Event maps one row. values[i] is the text of column i as the server's
// output function writes it (SELECT col::text) in UTF-8, with DateStyle
// ISO, TimeZone UTC and bytea_output hex as on the replication connection;
// nil is NULL. commitTime is the commit time of the row's transaction
// (pg_xact_commit_timestamp), used as the event time when the time column
// is NULL; zero when unknown, and such an event has no time. A row that
// cannot become a valid CloudEvent is returned as an *Error with LSN 0.
// The event keeps no reference to values.
func (m *TableRows) Event(values [][]byte, commitTime time.Time) (*event.Event, error) {
	d := m.d
	d.commitLSN, d.lsnText, d.commitTime, d.seq = 0, "", commitTime, m.seq
	cols := make([]column, len(values))
	for i, v := range values {
		if v == nil {
			cols[i] = column{kind: 'n'}
		} else {
			cols[i] = column{kind: 't', data: v}
		}
	}
	e, err := d.row(m.rel, cols)
	if err != nil {
		return nil, err
	}
	m.seq++
	return e, nil
}
