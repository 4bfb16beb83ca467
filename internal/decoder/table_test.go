package decoder_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

func tableColumns(cols []relCol) []decoder.Column {
	out := make([]decoder.Column, len(cols))
	for i, c := range cols {
		out[i] = decoder.Column{Name: c.name, OID: c.oid}
	}
	return out
}

func tableValues(r outboxRow, cols []relCol) [][]byte {
	out := make([][]byte, len(cols))
	for i, c := range cols {
		if v, ok := r[c.name]; ok {
			out[i] = []byte(v)
		}
	}
	return out
}

// A row read from the table makes the event the same row makes from the
// WAL, but for the pglsn extension and the commit LSN, which only the WAL
// knows.
func TestTableRowIsTheStreamedEvent(t *testing.T) {
	byteaCols := slices.Clone(outboxCols)
	byteaCols[6].oid = oidBytea
	for _, tc := range []struct {
		name string
		cols []relCol
		row  outboxRow
		cfg  decoder.Config
	}{
		{"typical row", outboxCols, typicalRow, decoder.Config{}},
		{"minimal row", outboxCols, outboxRow{"id": "1", "type": "t", "source": "/s"}, decoder.Config{}},
		{"binary data", byteaCols, typicalRow.with("datacontenttype", "application/octet-stream", "data", `\x00ff10`), decoder.Config{}},
		{"headers of every scalar kind", outboxCols, typicalRow.with("headers", `{"s": "x", "n": -1, "f": 2.5, "b": false}`), decoder.Config{}},
		{"default source", outboxCols, typicalRow.without("source"), decoder.Config{DefaultSource: "/default"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &recorder{}
			err := feed(newDecoder(t, tc.cfg), h, relationMsg(outboxRelID, "public", "outbox", tc.cols), beginMsg(txLSN, txTime, 1),
				insertMsg(outboxRelID, tc.row.vals(tc.cols)...), commitMsg(txLSN, txEnd, txTime))
			if err != nil || len(h.events) != 1 {
				t.Fatalf("streamed: %v, %d events", err, len(h.events))
			}
			streamed := h.events[0]

			m, err := newDecoder(t, tc.cfg).TableRows("outbox", tableColumns(tc.cols))
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Event(tableValues(tc.row, tc.cols), txTime)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := got.Extension(decoder.ExtLSN); ok {
				t.Errorf("the table row's event has a pglsn extension")
			}
			if got.CommitLSN != 0 {
				t.Errorf("CommitLSN = %d, want 0", got.CommitLSN)
			}
			// The same but pglsn.
			streamed.Extensions = slices.DeleteFunc(streamed.Extensions, func(x event.Extension) bool { return x.Name == decoder.ExtLSN })
			if a, b := string(streamed.AppendJSON(nil)), string(got.AppendJSON(nil)); a != b {
				t.Errorf("streamed (but pglsn):\n%s\ntable:\n%s", a, b)
			}
			if got.Table != "public.outbox" || got.AggregateType != streamed.AggregateType || got.AggregateID != streamed.AggregateID {
				t.Errorf("table %q aggregate %q/%q, want public.outbox %q/%q", got.Table, got.AggregateType, got.AggregateID, streamed.AggregateType, streamed.AggregateID)
			}
		})
	}
}

// An invalid table row is a *decoder.Error naming the table, the row and
// the column, without a (meaningless) LSN.
func TestTableRowInvalid(t *testing.T) {
	m, err := newDecoder(t, decoder.Config{}).TableRows("public.outbox", tableColumns(outboxCols))
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Event(tableValues(typicalRow.with("headers", `{"trace-parent": "x"}`), outboxCols), txTime)
	var de *decoder.Error
	if !errors.As(err, &de) || de.Column != "headers" || de.RowID != typicalRow["id"] || de.LSN != 0 {
		t.Fatalf("error = %#v, want a *decoder.Error for column headers of row %s", err, typicalRow["id"])
	}
	if s := err.Error(); !strings.Contains(s, "public.outbox row "+typicalRow["id"]+" (read from the table)") || strings.Contains(s, "LSN") {
		t.Errorf("error text %q", s)
	}
	if _, err := newDecoder(t, decoder.Config{}).TableRows("public.other", nil); err == nil {
		t.Errorf("TableRows accepted a table that is not configured")
	}
}
