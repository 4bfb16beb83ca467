package decoder

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"
)

// field indexes into relation.idx.
const (
	fID = iota
	fType
	fSource
	fSubject
	fAggregateType
	fAggregateID
	fData
	fDataContentType
	fDataSchema
	fHeaders
	fTime
	numFields
)

var fieldNames = [numFields]string{"id", "type", "source", "subject", "aggregate_type", "aggregate_id", "data", "datacontenttype", "dataschema", "headers", "time"}

// relation is the cached description of one relation from its latest
// Relation message.
type relation struct {
	id      uint32
	name    string // the configured outbox table's schema.table, or relname for other relations
	relname string // schema.table as the Relation message names it
	table   *Table // nil: not an outbox table, its rows are invalid
	cols    []relColumn
	idx     [numFields]int // column position per field, -1 when absent
	timeOID uint32
	err     error // why rows of this relation cannot be decoded
}

// Catalog maps relations to outbox tables by identity. The decoder asks it
// on every Relation message (rare: once per relation per connection and
// after DDL), never per row.
type Catalog interface {
	// Relation returns the configured outbox table (schema.table) that the
	// relation with this OID is or belongs to (a renamed outbox, a
	// partition of a partitioned one), or "" when it is no outbox table.
	// name is the relation's schema.table as the Relation message gives it.
	// An error stops the stream: the catalog found that an outbox table is
	// no longer streamed as it was, or could not be read.
	Relation(oid uint32, name string) (string, error)
	// Changed is called for a logical message the DDL guard wrote when a
	// change to an outbox table was let through on purpose (commit LSN of
	// its transaction); an error stops the stream before that transaction.
	Changed(commitLSN uint64) error
}

// UseCatalog makes the decoder map relations by OID through c instead of by
// name, and name publication in the error for a relation that is no outbox
// table. Call it before the first Decode.
func (d *Decoder) UseCatalog(c Catalog, publication string) {
	d.catalog, d.publication = c, publication
}

type relColumn struct {
	name string
	oid  uint32
}

func (d *Decoder) relation(r *reader) error {
	rel := &relation{}
	rel.id = r.u32("relation id")
	ns := r.cstring("relation namespace")
	name := r.cstring("relation name")
	r.u8("relation replica identity")
	n := int(r.u16("relation column count"))
	badName := "" // names come in the server encoding too
	for i := 0; i < n && r.err == nil; i++ {
		r.u8("relation column flags")
		cname, ok := d.name(r.cstring("relation column name"))
		if !ok && badName == "" {
			badName = "column name " + cname
		}
		oid := r.u32("relation column type")
		r.u32("relation column type modifier")
		rel.cols = append(rel.cols, relColumn{name: cname, oid: oid})
	}
	if r.err != nil {
		return r.err
	}
	if len(ns) == 0 {
		ns = []byte("pg_catalog")
	}
	nsName, ok1 := d.name(ns)
	relName, ok2 := d.name(name)
	rel.relname = nsName + "." + relName
	if !ok1 || !ok2 {
		badName = "relation name " + rel.relname
	}
	table := rel.relname
	if d.catalog != nil {
		t, err := d.catalog.Relation(rel.id, rel.relname)
		if err != nil {
			return err
		}
		table = t
	}
	rel.table = d.tables[table]
	if rel.table != nil {
		rel.name = table
		d.mapColumns(rel)
		if badName != "" && rel.err == nil {
			rel.err = fmt.Errorf("table %s: %s is not valid %s text", rel.name, badName, d.enc.name)
		}
	} else {
		rel.name = rel.relname
		d.logger.Warn("relation is in the publication but is no configured outbox table; its rows are invalid (outbox.on_invalid)",
			"relation", rel.relname, "oid", rel.id)
	}
	d.rels[rel.id] = rel
	return nil
}

// foreignRow is the error for a row of a published relation that is no
// outbox table: it is never skipped silently.
func (d *Decoder) foreignRow(rel *relation, cols []column) *Error {
	pub := "the publication"
	if d.publication != "" {
		pub = "publication " + d.publication
	}
	e := &Error{Table: rel.relname, LSN: d.commitLSN, Raw: make(map[string]*string, len(cols)),
		Reason: fmt.Sprintf("relation %s (OID %d) is in %s but is no configured outbox table: take it out of the publication (ALTER PUBLICATION ... DROP TABLE %s) or add it to outbox.tables; until then the slot holds here (or, with outbox.on_invalid: dead-letter, its rows are stored as dead letters)",
			rel.relname, rel.id, pub, rel.relname)}
	for i, c := range cols {
		if i >= len(rel.cols) {
			break
		}
		var v *string
		if c.kind == 't' || c.kind == 'b' {
			s := string(c.data)
			v = &s
		}
		e.Raw[rel.cols[i].name] = v
		if rel.cols[i].name == "id" && v != nil {
			e.RowID = *v
		}
	}
	return e
}

func (d *Decoder) mapColumns(rel *relation) {
	c := rel.table.Columns
	want := [numFields]string{c.ID, c.Type, c.Source, c.Subject, c.AggregateType, c.AggregateID, c.Data, c.DataContentType, c.DataSchema, c.Headers, c.Time}
	for f := range rel.idx {
		rel.idx[f] = -1
		if want[f] == "-" {
			continue
		}
		for i, col := range rel.cols {
			if col.name == want[f] {
				rel.idx[f] = i
				break
			}
		}
	}
	switch {
	case rel.idx[fID] < 0:
		rel.err = fmt.Errorf("table %s has no id column %q", rel.name, c.ID)
	case rel.idx[fType] < 0:
		rel.err = fmt.Errorf("table %s has no type column %q", rel.name, c.Type)
	case rel.idx[fSource] < 0 && rel.table.DefaultSource == "":
		rel.err = fmt.Errorf("table %s has no source column %q and no default_source is configured", rel.name, c.Source)
	}
	if i := rel.idx[fTime]; i >= 0 {
		rel.timeOID = rel.cols[i].oid
		switch rel.timeOID {
		case pgtype.TimestamptzOID, pgtype.TimestampOID, pgtype.DateOID:
		default:
			rel.err = fmt.Errorf("table %s column %q has type oid %d; the time column must be timestamptz or timestamp", rel.name, c.Time, rel.timeOID)
		}
	}
}
