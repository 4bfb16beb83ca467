package decoder_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// TestDecodeRowErrors covers every way a row fails to become a CloudEvent:
// each is an *Error that names the table, the row, the transaction's LSN and
// the column, and keeps the raw row.
func TestDecodeRowErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		row     outboxRow
		column  string
		reason  string // part of Reason
		dataOID uint32 // type of the data column; 0: jsonb
	}{
		{name: "NULL type", row: typicalRow.without("type"), column: "type", reason: "NULL"},
		{name: "empty type", row: typicalRow.with("type", ""), column: "type", reason: "NULL or empty"},
		{name: "NULL id", row: typicalRow.without("id"), column: "id", reason: "NULL"},
		{name: "data not JSON under JSON content type", row: typicalRow.with("data", "plain words").with("datacontenttype", "application/json"), column: "data", reason: "not valid JSON", dataOID: oidText},
		{name: "data not JSON under default content type", row: typicalRow.with("data", "plain words").without("datacontenttype"), column: "data", reason: "not valid JSON", dataOID: oidText},
		{name: "headers not an object", row: typicalRow.with("headers", `["a"]`), column: "headers", reason: "JSON object"},
		{name: "headers not JSON", row: typicalRow.with("headers", `{"a":`), column: "headers", reason: "JSON object"},
		{name: "extension name upper case", row: typicalRow.with("headers", `{"traceParent": "x"}`), column: "headers", reason: "traceParent"},
		{name: "extension name with dash", row: typicalRow.with("headers", `{"trace-parent": "x"}`), column: "headers", reason: "trace-parent"},
		{name: "extension name with underscore", row: typicalRow.with("headers", `{"trace_parent": "x"}`), column: "headers", reason: "trace_parent"},
		{name: "extension name empty", row: typicalRow.with("headers", `{"": "x"}`), column: "headers", reason: "empty"},
		{name: "extension name non-ASCII", row: typicalRow.with("headers", `{"trac\u00e9": "x"}`), column: "headers", reason: "not allowed"},
		{name: "reserved name id", row: typicalRow.with("headers", `{"id": "x"}`), column: "headers", reason: "reserved"},
		{name: "reserved name data", row: typicalRow.with("headers", `{"data": "x"}`), column: "headers", reason: "reserved"},
		{name: "reserved name specversion", row: typicalRow.with("headers", `{"specversion": "1.0"}`), column: "headers", reason: "reserved"},
		{name: "reserved name partitionkey", row: typicalRow.with("headers", `{"partitionkey": "k"}`), column: "headers", reason: "reserved"},
		{name: "reserved name pglsn", row: typicalRow.with("headers", `{"pglsn": "0/0"}`), column: "headers", reason: "reserved"},
		{name: "header value object", row: typicalRow.with("headers", `{"nested": {"a": 1}}`), column: "headers", reason: "an object"},
		{name: "header value array", row: typicalRow.with("headers", `{"list": [1]}`), column: "headers", reason: "an array"},
		{name: "dataschema not a URI", row: typicalRow.with("dataschema", "not a uri"), column: "dataschema", reason: "absolute URI"},
		{name: "dataschema relative", row: typicalRow.with("dataschema", "/schemas/order.json"), column: "dataschema", reason: "absolute URI"},
		{name: "dataschema bad host", row: typicalRow.with("dataschema", "http://exa mple.com/x"), column: "dataschema", reason: "absolute URI"},
		{name: "source with spaces", row: typicalRow.with("source", "my orders service"), column: "source", reason: "white space"},
		{name: "source with newline", row: typicalRow.with("source", "/orders\n"), column: "source", reason: "white space"},
		{name: "source not a URI reference", row: typicalRow.with("source", "http://[::1"), column: "source", reason: "URI-reference"},
		{name: "time not a timestamp", row: typicalRow.with("created_at", "yesterday at noon"), column: "created_at", reason: ""},
		{name: "time infinity", row: typicalRow.with("created_at", "infinity"), column: "created_at", reason: "infinite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cols := slices.Clone(outboxCols)
			if tc.dataOID != 0 {
				cols[6].oid = tc.dataOID
			}
			d := newDecoder(t, decoder.Config{})
			h := &recorder{}
			err := feed(d, h, relationMsg(outboxRelID, "public", "outbox", cols), beginMsg(txLSN, txTime, 1),
				insertMsg(outboxRelID, tc.row.vals(cols)...))
			de := decodeError(t, err)
			if len(h.events) != 0 {
				t.Errorf("an event was emitted for a bad row: %+v", h.events[0])
			}
			checkRowError(t, de, tc.row, tc.column, tc.reason)
		})
	}
}

func checkRowError(t *testing.T, de *decoder.Error, row outboxRow, column, reason string) {
	t.Helper()
	wantID := row["id"]
	if de.Table != "public.outbox" || de.RowID != wantID || de.LSN != txLSN || de.Column != column {
		t.Errorf("Error{Table %q RowID %q LSN %X Column %q}, want {public.outbox %q %X %q}",
			de.Table, de.RowID, de.LSN, de.Column, wantID, txLSN, column)
	}
	if !strings.Contains(de.Reason, reason) {
		t.Errorf("Reason = %q, want it to contain %q", de.Reason, reason)
	}
	msg := de.Error()
	idText := wantID
	if idText == "" {
		idText = "(no id)"
	}
	for _, part := range []string{"decoder: ", "public.outbox", idText, "16/B374D848", `"` + column + `"`, de.Reason} {
		if !strings.Contains(msg, part) {
			t.Errorf("message %q does not name %q", msg, part)
		}
	}
	// Raw holds every column: text for values, nil for NULL.
	if len(de.Raw) != len(outboxCols) {
		t.Errorf("Raw has %d columns, want %d: %v", len(de.Raw), len(outboxCols), de.Raw)
	}
	for _, c := range outboxCols {
		got, ok := de.Raw[c.name]
		if !ok {
			t.Errorf("Raw lacks column %q", c.name)
			continue
		}
		want, notNull := row[c.name]
		switch {
		case !notNull && got != nil:
			t.Errorf("Raw[%q] = %q, want nil for NULL", c.name, *got)
		case notNull && (got == nil || *got != want):
			t.Errorf("Raw[%q] = %v, want %q", c.name, got, want)
		}
	}
}

// TestDecodeRelationErrors: a table that lacks a required column, or whose
// time column has the wrong type, fails every row with a reason naming the
// table.
func TestDecodeRelationErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		modify func([]relCol) []relCol
		reason string
	}{
		{"no id column", func(c []relCol) []relCol { c[0].name = "uuid"; return c }, `no id column "id"`},
		{"no type column", func(c []relCol) []relCol { c[1].name = "kind"; return c }, `no type column "type"`},
		{"time column is text", func(c []relCol) []relCol { c[10].oid = oidText; return c }, "time column must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cols := tc.modify(slices.Clone(outboxCols))
			d := newDecoder(t, decoder.Config{})
			h := &recorder{}
			err := feed(d, h, relationMsg(outboxRelID, "public", "outbox", cols), beginMsg(txLSN, txTime, 1),
				insertMsg(outboxRelID, typicalRow.vals(outboxCols)...))
			de := decodeError(t, err)
			if de.Table != "public.outbox" || de.LSN != txLSN || !strings.Contains(de.Reason, tc.reason) ||
				!strings.Contains(de.Reason, "public.outbox") || len(de.Raw) != len(cols) {
				t.Errorf("error = %+v, want reason %q naming the table", de, tc.reason)
			}
		})
	}
}

// TestDecodeErrorIsNotProtocol keeps the two error kinds apart: the stream is
// fine, the row is not.
func TestDecodeErrorIsNotProtocol(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{})
	_, err := decodeTx(d, outboxInsert(typicalRow.without("type")))
	if errors.Is(err, decoder.ErrProtocol) {
		t.Errorf("a bad row reports ErrProtocol: %v", err)
	}
	decodeError(t, err)
}

// TestDecodeSourceCacheDoesNotHideBadSource: the decoder skips validating a
// source equal to the last valid one; a different bad one must still fail.
func TestDecodeSourceCacheDoesNotHideBadSource(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{})
	h, err := decodeTx(d, outboxInsert(typicalRow), outboxInsert(typicalRow.with("id", "2")))
	if err != nil || len(h.events) != 2 {
		t.Fatalf("valid rows: %v", err)
	}
	_, err = decodeTx(d, outboxInsert(typicalRow.with("source", "a b")))
	if de := decodeError(t, err); de.Column != "source" {
		t.Errorf("error = %v, want column source", de)
	}
}

func TestDecodeDataContentTypeMustBeMediaType(t *testing.T) {
	t.Parallel()
	for _, ct := range []string{"json", "application/", "text/plain; charset"} {
		row := typicalRow.with("datacontenttype", ct, "data", `{"a": 1}`)
		_, err := decodeTx(newDecoder(t, decoder.Config{}), outboxInsert(row))
		var de *decoder.Error
		if !errors.As(err, &de) || de.Column != "datacontenttype" {
			t.Errorf("datacontenttype %q: error = %v, want an *Error on column datacontenttype", ct, err)
		}
		_, err = decodeTx(newDecoder(t, decoder.Config{}),
			logicalMsg(true, txLSN-8, "outbox", `{"id":"1","type":"t","source":"/s","datacontenttype":"`+ct+`"}`))
		if !errors.As(err, &de) || de.Column != "datacontenttype" {
			t.Errorf("message with datacontenttype %q: error = %v, want an *Error on datacontenttype", ct, err)
		}
	}
}

func TestDecodeTimeOutsideRFC3339Range(t *testing.T) {
	t.Parallel()
	for _, ts := range []string{"10000-01-01 00:00:00+00", "0044-03-15 12:00:00+00 BC"} {
		row := typicalRow.with("created_at", ts)
		_, err := decodeTx(newDecoder(t, decoder.Config{}), outboxInsert(row))
		var de *decoder.Error
		if !errors.As(err, &de) || de.Column != "created_at" {
			t.Errorf("created_at %q: error = %v, want an *Error on column created_at", ts, err)
		}
	}
}
