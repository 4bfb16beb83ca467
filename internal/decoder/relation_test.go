package decoder_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// fakeCatalog maps relation OIDs to outbox tables with function fields.
type fakeCatalog struct {
	relation func(oid uint32, name string) (string, error)
	changed  func(commitLSN uint64) error
	asked    []uint32
}

func (c *fakeCatalog) Relation(oid uint32, name string) (string, error) {
	c.asked = append(c.asked, oid)
	return c.relation(oid, name)
}

func (c *fakeCatalog) Changed(lsn uint64) error {
	if c.changed == nil {
		return nil
	}
	return c.changed(lsn)
}

// Rows of a published relation that is no outbox table are never skipped:
// each is an *Error naming the relation, its OID and the LSN, with the raw
// row, so outbox.on_invalid decides (issue 8, K1).
func TestForeignRelationRowIsInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cat  *fakeCatalog
	}{
		{"by name", nil},
		{"by catalog", &fakeCatalog{relation: func(oid uint32, _ string) (string, error) {
			if oid == outboxRelID {
				return "public.outbox", nil
			}
			return "", nil
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDecoder(t, decoder.Config{})
			if tc.cat != nil {
				d.UseCatalog(tc.cat, "outbox_cdc")
			}
			otherCols := []relCol{{name: "id", oid: oidInt4, key: true}, {name: "name", oid: oidText}}
			h := &recorder{}
			err := feed(d, h,
				// A table named outbox in another schema is no outbox either.
				relationMsg(2, "audit", "outbox", outboxCols),
				relationMsg(1, "public", "customers", otherCols),
				outboxRelation(),
				beginMsg(txLSN, txTime, 1),
				outboxInsert(typicalRow),
				insertMsg(1, txt("7"), txt("ann")),
			)
			de := decodeError(t, err)
			if de.Table != "public.customers" || de.RowID != "7" || de.LSN != txLSN || *de.Raw["name"] != "ann" {
				t.Errorf("error = %+v, want public.customers row 7 with its raw row", de)
			}
			for _, w := range []string{"public.customers", "OID 1", "LSN 16/B374D848", "outbox.tables"} {
				if !strings.Contains(de.Error(), w) {
					t.Errorf("error %q does not say %q", de.Error(), w)
				}
			}
			if tc.cat != nil && !strings.Contains(de.Error(), "publication outbox_cdc") {
				t.Errorf("error %q does not name the publication", de.Error())
			}
			err = feed(d, h, insertMsg(2, typicalRow.vals(outboxCols)...))
			if de := decodeError(t, err); de.Table != "audit.outbox" {
				t.Errorf("row of audit.outbox: %v", de)
			}
		})
	}
}

// With a catalog, a relation is the outbox by OID whatever it is called now:
// a renamed outbox and a partition both produce events of the configured
// table; the catalog's error stops the stream.
func TestCatalogMapsRelationsByOID(t *testing.T) {
	t.Parallel()
	const partitionID = 7001
	stop := errors.New("outbox left the publication")
	cat := &fakeCatalog{relation: func(oid uint32, name string) (string, error) {
		switch oid {
		case outboxRelID, partitionID:
			return "public.outbox", nil
		case 666:
			return "", stop
		}
		return "", nil
	}}
	d := newDecoder(t, decoder.Config{})
	d.UseCatalog(cat, "outbox_cdc")
	h := &recorder{}
	err := feed(d, h,
		relationMsg(outboxRelID, "public", "outbox_old", outboxCols),
		relationMsg(partitionID, "public", "outbox_2026", outboxCols),
		beginMsg(txLSN, txTime, 1),
		outboxInsert(typicalRow),
		insertMsg(partitionID, typicalRow.vals(outboxCols)...),
		commitMsg(txLSN, txEnd, txTime),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.events) != 2 {
		t.Fatalf("%d events, want 2", len(h.events))
	}
	for _, e := range h.events {
		if e.Table != "public.outbox" {
			t.Errorf("event table %q, want the configured public.outbox", e.Table)
		}
	}
	if err := feed(d, h, relationMsg(666, "public", "outbox", outboxCols)); !errors.Is(err, stop) {
		t.Fatalf("Relation with a failing catalog: %v, want its error", err)
	}
}

// The DDL guard's message (a change let through on purpose) makes the
// decoder ask the catalog at that position; its error stops the stream before
// the transaction commits. Without a catalog it is ignored like any prefix.
func TestDDLMessageAsksCatalog(t *testing.T) {
	t.Parallel()
	stop := errors.New("drift")
	var at uint64
	cat := &fakeCatalog{relation: func(uint32, string) (string, error) { return "public.outbox", nil },
		changed: func(lsn uint64) error { at = lsn; return stop }}
	d := newDecoder(t, decoder.Config{})
	d.UseCatalog(cat, "outbox_cdc")
	_, err := decodeTx(d, logicalMsg(true, txLSN-8, decoder.DDLMessagePrefix, `{"change":"takes outbox table public.outbox out of publication outbox_cdc"}`))
	if !errors.Is(err, stop) || at != txLSN {
		t.Fatalf("err %v at %X, want the catalog's error at the transaction's commit LSN %X", err, at, txLSN)
	}
	h, err := decodeTx(newDecoder(t, decoder.Config{}), logicalMsg(true, txLSN-8, decoder.DDLMessagePrefix, `{}`))
	if err != nil || len(h.events) != 0 {
		t.Fatalf("without a catalog: %v, %d events", err, len(h.events))
	}
}
