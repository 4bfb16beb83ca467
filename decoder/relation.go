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
	name    string // schema.table
	table   *Table // nil: not an outbox table, its rows are skipped
	cols    []relColumn
	idx     [numFields]int // column position per field, -1 when absent
	timeOID uint32
	err     error // why rows of this relation cannot be decoded
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
	rel.name = nsName + "." + relName
	if !ok1 || !ok2 {
		badName = "relation name " + rel.name
	}
	rel.table = d.tables[rel.name]
	if rel.table != nil {
		d.mapColumns(rel)
		if badName != "" && rel.err == nil {
			rel.err = fmt.Errorf("table %s: %s is not valid %s text", rel.name, badName, d.enc.name)
		}
	} else {
		d.logger.Warn("relation is in the publication but not configured as an outbox table; its rows are skipped", "relation", rel.name)
	}
	d.rels[rel.id] = rel
	return nil
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
