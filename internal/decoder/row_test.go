package decoder_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

func TestDecodeFullRow(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{})
	row := typicalRow.with("headers", `{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "zeta": "z", "alpha": true, "num": 1.5, "gone": null}`)
	h, err := decodeTx(d, outboxInsert(row), outboxInsert(row.with("id", "second")))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(h.calls, ""), "BEEC"; got != want {
		t.Fatalf("handler calls = %s, want %s", got, want)
	}
	if h.begins[0] != txLSN || h.commits[0] != [2]uint64{txLSN, txEnd} {
		t.Errorf("begin %X, commit %X, want %X and %X/%X", h.begins[0], h.commits[0], txLSN, txLSN, txEnd)
	}
	for i, ts := range h.times {
		if !ts.Equal(txTime) {
			t.Errorf("handler commit time %d = %v, want %v", i, ts, txTime)
		}
	}
	e := h.events[0]
	want := struct {
		ID, Type, Source, Subject, AggregateType, AggregateID, DataContentType, DataSchema, Table string
	}{
		ID: "0b6a4c1e-6a43-4f3b-9d6c-8f1f0c3a2b11", Type: "com.example.order.created", Source: "/orders",
		Subject: "order-42", AggregateType: "order", AggregateID: "42", DataContentType: "application/json",
		DataSchema: "https://example.com/schemas/order-created.json", Table: "public.outbox",
	}
	got := want
	got.ID, got.Type, got.Source, got.Subject = e.ID, e.Type, e.Source, e.Subject
	got.AggregateType, got.AggregateID, got.DataContentType = e.AggregateType, e.AggregateID, e.DataContentType
	got.DataSchema, got.Table = e.DataSchema, e.Table
	if got != want {
		t.Errorf("event attributes = %+v\nwant %+v", got, want)
	}
	wantTime := time.Date(2026, 11, 27, 8, 21, 12, 123456000, time.UTC)
	if !e.Time.Equal(wantTime) || e.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v in UTC", e.Time, wantTime)
	}
	if e.DataKind != event.DataJSON || string(e.Data) != row["data"] {
		t.Errorf("Data = %q kind %d, want %q kind DataJSON", e.Data, e.DataKind, row["data"])
	}
	if e.CommitLSN != txLSN || !e.CommitTime.Equal(txTime) {
		t.Errorf("CommitLSN %X CommitTime %v, want %X %v", e.CommitLSN, e.CommitTime, txLSN, txTime)
	}
	wantExt := []event.Extension{
		{Name: "alpha", Value: "true"},
		{Name: "num", Value: "1.5"},
		{Name: decoder.ExtPartitionKey, Value: "42"},
		{Name: decoder.ExtLSN, Value: "16/B374D848"},
		{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{Name: "zeta", Value: "z"},
	}
	if !reflect.DeepEqual(e.Extensions, wantExt) {
		t.Errorf("Extensions = %v\nwant %v", e.Extensions, wantExt)
	}
	if e.Seq != 0 || h.events[1].Seq != 1 || h.events[1].ID != "second" {
		t.Errorf("Seq = %d, %d (id %q), want 0, 1", e.Seq, h.events[1].Seq, h.events[1].ID)
	}
	if e.Size < len(row["data"]) {
		t.Errorf("Size = %d, smaller than the data alone (%d)", e.Size, len(row["data"]))
	}
	if e.PartitionKey() != "42" {
		t.Errorf("PartitionKey = %q, want 42", e.PartitionKey())
	}
}

// TestDecodeDoesNotRetainMessage checks that events do not alias the message
// buffer, which the replication reader reuses.
func TestDecodeDoesNotRetainMessage(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{})
	ins := outboxInsert(typicalRow)
	h, err := decodeTx(d, ins)
	if err != nil {
		t.Fatal(err)
	}
	e := h.events[0]
	before := string(e.AppendJSON(nil))
	for i := range ins {
		ins[i] = 'X'
	}
	if after := string(e.AppendJSON(nil)); after != before {
		t.Errorf("event changed after its message buffer was overwritten:\nbefore %s\nafter  %s", before, after)
	}
}

func TestDecodeNullOptionalColumns(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{})
	row := outboxRow{"id": "1", "type": "t", "source": "/s"}
	h, err := decodeTx(d, outboxInsert(row))
	if err != nil {
		t.Fatal(err)
	}
	e := h.events[0]
	if e.Subject != "" || e.AggregateType != "" || e.AggregateID != "" || e.DataContentType != "" || e.DataSchema != "" {
		t.Errorf("optional attributes not empty: %+v", e)
	}
	if e.DataKind != event.DataNone || e.Data != nil {
		t.Errorf("Data = %q kind %d, want none", e.Data, e.DataKind)
	}
	if !e.Time.Equal(txTime) {
		t.Errorf("Time = %v, want the commit time %v for a NULL created_at", e.Time, txTime)
	}
	want := []event.Extension{{Name: decoder.ExtLSN, Value: "16/B374D848"}}
	if !reflect.DeepEqual(e.Extensions, want) {
		t.Errorf("Extensions = %v, want only %v (no partitionkey without an aggregate id)", e.Extensions, want)
	}
	if e.PartitionKey() != "1" {
		t.Errorf("PartitionKey = %q, want the event id", e.PartitionKey())
	}
	// Empty strings in optional columns are as good as NULL, and "null" or
	// "{}" headers add nothing.
	for _, headers := range []string{"null", "{}", " { } "} {
		row := outboxRow{"id": "1", "type": "t", "source": "/s", "subject": "", "headers": headers}
		h, err := decodeTx(newDecoder(t, decoder.Config{}), outboxInsert(row))
		if err != nil {
			t.Fatalf("headers %q: %v", headers, err)
		}
		if e := h.events[0]; e.Subject != "" || len(e.Extensions) != 1 {
			t.Errorf("headers %q: subject %q, extensions %v", headers, e.Subject, e.Extensions)
		}
	}
}

func TestDecodeTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		oid  uint32
		text *string // nil: NULL
		want time.Time
	}{
		{"timestamptz utc", oidTimestamptz, ptr("2026-11-27 08:21:12.123456+00"), time.Date(2026, 11, 27, 8, 21, 12, 123456000, time.UTC)},
		{"timestamptz +05:30", oidTimestamptz, ptr("2026-11-27 08:21:12.123456+05:30"), time.Date(2026, 11, 27, 2, 51, 12, 123456000, time.UTC)},
		{"timestamptz -08", oidTimestamptz, ptr("2026-11-26 23:59:59-08"), time.Date(2026, 11, 27, 7, 59, 59, 0, time.UTC)},
		{"timestamptz whole seconds", oidTimestamptz, ptr("2026-01-02 03:04:05+00"), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"timestamp without zone is UTC", oidTimestamp, ptr("2026-11-27 08:21:12.5"), time.Date(2026, 11, 27, 8, 21, 12, 500000000, time.UTC)},
		{"date", oidDate, ptr("2026-11-27"), time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)},
		{"NULL is the commit time", oidTimestamptz, nil, txTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cols := slices.Clone(outboxCols)
			cols[10].oid = tc.oid
			vals := outboxRow{"id": "1", "type": "t", "source": "/s"}.vals(cols)
			if tc.text != nil {
				vals[10] = txt(*tc.text)
			}
			d := newDecoder(t, decoder.Config{})
			h := &recorder{}
			err := feed(d, h, relationMsg(outboxRelID, "public", "outbox", cols), beginMsg(txLSN, txTime, 1),
				insertMsg(outboxRelID, vals...), commitMsg(txLSN, txEnd, txTime))
			if err != nil {
				t.Fatal(err)
			}
			e := h.events[0]
			if !e.Time.Equal(tc.want) || e.Time.Location() != time.UTC {
				t.Errorf("Time = %v, want %v in UTC", e.Time, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestDecodeData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		oid      uint32
		ct       *string // datacontenttype; nil: NULL
		data     string
		wantKind event.DataKind
		wantData string
	}{
		{"jsonb default content type", oidJSONB, nil, `{"a": 1}`, event.DataJSON, `{"a": 1}`},
		{"jsonb application/json", oidJSONB, ptr("application/json"), `[1, 2]`, event.DataJSON, `[1, 2]`},
		{"jsonb +json suffix", oidJSONB, ptr("application/vnd.example+json; charset=utf-8"), `"s"`, event.DataJSON, `"s"`},
		{"jsonb under text/plain is text", oidJSONB, ptr("text/plain"), `{"a": 1}`, event.DataText, `{"a": 1}`},
		{"json", oidJSON, ptr("application/json"), `{"b" : [true, null]}`, event.DataJSON, `{"b" : [true, null]}`},
		{"text under JSON content type", oidText, ptr("application/json"), `{"c":"d"}`, event.DataJSON, `{"c":"d"}`},
		{"text under default content type", oidText, nil, `42`, event.DataJSON, `42`},
		{"text under text/plain", oidText, ptr("text/plain"), "hello\nworld", event.DataText, "hello\nworld"},
		{"text under text/csv", oidText, ptr("text/csv"), "a,b\n1,2", event.DataText, "a,b\n1,2"},
		{"bytea hex", oidBytea, ptr("application/octet-stream"), `\xdeadbeef00`, event.DataBinary, "\xde\xad\xbe\xef\x00"},
		{"bytea hex upper case digits", oidBytea, ptr("application/octet-stream"), `\xDEADBEEF`, event.DataBinary, "\xde\xad\xbe\xef"},
		{"bytea empty", oidBytea, ptr("application/octet-stream"), `\x`, event.DataBinary, ""},
		{"bytea holding JSON under default content type", oidBytea, nil, `\x7b2261223a317d`, event.DataJSON, `{"a":1}`},
		{"bytea not JSON under default content type", oidBytea, nil, `\xff00`, event.DataBinary, "\xff\x00"},
		{"bytea JSON under octet-stream stays binary", oidBytea, ptr("application/octet-stream"), `\x7b7d`, event.DataBinary, `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cols := slices.Clone(outboxCols)
			cols[6].oid = tc.oid
			row := outboxRow{"id": "1", "type": "t", "source": "/s", "data": tc.data}
			if tc.ct != nil {
				row["datacontenttype"] = *tc.ct
			}
			d := newDecoder(t, decoder.Config{})
			h := &recorder{}
			err := feed(d, h, relationMsg(outboxRelID, "public", "outbox", cols), beginMsg(txLSN, txTime, 1),
				insertMsg(outboxRelID, row.vals(cols)...), commitMsg(txLSN, txEnd, txTime))
			if err != nil {
				t.Fatal(err)
			}
			e := h.events[0]
			if e.DataKind != tc.wantKind || !bytes.Equal(e.Data, []byte(tc.wantData)) {
				t.Errorf("Data = %q kind %d, want %q kind %d", e.Data, e.DataKind, tc.wantData, tc.wantKind)
			}
			if out := e.AppendJSON(nil); !json.Valid(out) {
				t.Errorf("AppendJSON is not valid JSON: %s", out)
			}
		})
	}
}

func TestDecodeDataErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		oid  uint32
		ct   *string
		data string
		want string // in the reason
	}{
		{"text not JSON under default content type", oidText, nil, "hello", "not valid JSON"},
		{"text not JSON under application/json", oidText, ptr("application/json"), "{oops", "not valid JSON"},
		{"bytea escape format", oidBytea, nil, `abc`, "hex format"},
		{"bytea bad hex", oidBytea, nil, `\xzz`, "not valid hex"},
		{"bytea odd hex", oidBytea, nil, `\xabc`, "not valid hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cols := slices.Clone(outboxCols)
			cols[6].oid = tc.oid
			row := outboxRow{"id": "row-1", "type": "t", "source": "/s", "data": tc.data}
			if tc.ct != nil {
				row["datacontenttype"] = *tc.ct
			}
			d := newDecoder(t, decoder.Config{})
			err := feed(d, &recorder{}, relationMsg(outboxRelID, "public", "outbox", cols), beginMsg(txLSN, txTime, 1),
				insertMsg(outboxRelID, row.vals(cols)...))
			de := decodeError(t, err)
			if de.Column != "data" || de.RowID != "row-1" || !strings.Contains(de.Reason, tc.want) {
				t.Errorf("error = %+v, want column data, row row-1, reason containing %q", de, tc.want)
			}
		})
	}
}

func TestDecodeColumnMapping(t *testing.T) {
	t.Parallel()
	cfg := decoder.Config{Tables: []decoder.Table{{
		Name: "app.events",
		Columns: decoder.Columns{
			ID: "event_id", Type: "event_type", Source: "origin", Subject: "-",
			AggregateType: "stream", AggregateID: "stream_id", Data: "payload",
			DataContentType: "-", DataSchema: "-", Headers: "meta", Time: "occurred_at",
		},
	}}}
	cols := []relCol{
		{name: "seq", oid: oidInt4, key: true},
		{name: "event_id", oid: oidText},
		{name: "event_type", oid: oidText},
		{name: "origin", oid: oidText},
		{name: "stream", oid: oidText},
		{name: "stream_id", oid: oidText},
		{name: "payload", oid: oidJSONB},
		{name: "meta", oid: oidJSONB},
		{name: "occurred_at", oid: oidTimestamptz},
		// Columns with default names that the mapping leaves out ("-") or
		// renames must not be read.
		{name: "subject", oid: oidText},
		{name: "id", oid: oidText},
		{name: "type", oid: oidText},
		{name: "datacontenttype", oid: oidText},
	}
	vals := []val{txt("7"), txt("e-1"), txt("thing.happened"), txt("urn:app"), txt("thing"), txt("t-9"),
		txt(`{"x": 1}`), txt(`{"tenant": "acme"}`), txt("2026-11-27 08:21:12+00"),
		txt("IGNORED"), txt("IGNORED"), txt("IGNORED"), txt("text/plain")}
	d := newDecoder(t, cfg)
	h := &recorder{}
	err := feed(d, h, relationMsg(99, "app", "events", cols), beginMsg(txLSN, txTime, 1),
		insertMsg(99, vals...), commitMsg(txLSN, txEnd, txTime))
	if err != nil {
		t.Fatal(err)
	}
	e := h.events[0]
	if e.ID != "e-1" || e.Type != "thing.happened" || e.Source != "urn:app" || e.AggregateType != "thing" ||
		e.AggregateID != "t-9" || e.Subject != "" || e.DataContentType != "" || e.Table != "app.events" {
		t.Errorf("mapped event = %+v", e)
	}
	if e.DataKind != event.DataJSON || string(e.Data) != `{"x": 1}` {
		t.Errorf("Data = %q kind %d; datacontenttype is unmapped, so the default (JSON) applies", e.Data, e.DataKind)
	}
	if v, ok := e.Extension("tenant"); !ok || v != "acme" {
		t.Errorf("tenant extension = %q, %v; want acme from the renamed headers column", v, ok)
	}
	if !e.Time.Equal(time.Date(2026, 11, 27, 8, 21, 12, 0, time.UTC)) {
		t.Errorf("Time = %v", e.Time)
	}

	// An error names the renamed column, not the field.
	vals[7] = txt(`{"Bad": "x"}`)
	err = feed(d, h, beginMsg(txLSN+0x100, txTime, 2), insertMsg(99, vals...))
	if de := decodeError(t, err); de.Column != "meta" || de.Table != "app.events" || de.RowID != "e-1" {
		t.Errorf("error = %+v, want column meta of app.events row e-1", de)
	}
}

func TestDecodeUnqualifiedTableName(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{Tables: []decoder.Table{{Name: "events"}}})
	h := &recorder{}
	err := feed(d, h, relationMsg(5, "public", "events", outboxCols), beginMsg(txLSN, txTime, 1),
		insertMsg(5, typicalRow.vals(outboxCols)...), commitMsg(txLSN, txEnd, txTime))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.events) != 1 || h.events[0].Table != "public.events" {
		t.Errorf("events = %v, want one from public.events", h.events)
	}
}

func TestDecodeSeveralTables(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{Tables: []decoder.Table{
		{Name: "public.outbox"},
		{Name: "billing.outbox", DefaultSource: "/billing", Columns: decoder.Columns{Source: "-"}},
	}})
	billingCols := slices.DeleteFunc(slices.Clone(outboxCols), func(c relCol) bool { return c.name == "source" })
	h := &recorder{}
	err := feed(d, h, outboxRelation(), relationMsg(7, "billing", "outbox", billingCols), beginMsg(txLSN, txTime, 1),
		outboxInsert(typicalRow), insertMsg(7, typicalRow.with("id", "b-1").vals(billingCols)...),
		commitMsg(txLSN, txEnd, txTime))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.events) != 2 {
		t.Fatalf("got %d events, want 2", len(h.events))
	}
	if e := h.events[1]; e.Table != "billing.outbox" || e.Source != "/billing" || e.ID != "b-1" || e.Seq != 1 {
		t.Errorf("billing event = table %s source %s id %s seq %d", e.Table, e.Source, e.ID, e.Seq)
	}
}

// TestDecodeRelationReplaced is ALTER TABLE outbox ADD COLUMN mid-stream: the
// server sends a new Relation message, and the next insert has one more
// column.
func TestDecodeRelationReplaced(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{})
	h := &recorder{}
	wider := append(slices.Clone(outboxCols), relCol{name: "tenant", oid: oidText})
	widerRow := append(typicalRow.vals(outboxCols), txt("acme"))
	err := feed(d, h,
		outboxRelation(), beginMsg(txLSN, txTime, 1), outboxInsert(typicalRow), commitMsg(txLSN, txEnd, txTime),
		relationMsg(outboxRelID, "public", "outbox", wider),
		beginMsg(txLSN+0x100, txTime, 2), insertMsg(outboxRelID, widerRow...), commitMsg(txLSN+0x100, txEnd+0x100, txTime),
	)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.events) != 2 || h.events[1].ID != typicalRow["id"] || h.events[1].CommitLSN != txLSN+0x100 {
		t.Fatalf("events = %d, want 2, the second from the widened table", len(h.events))
	}
	if h.events[1].Seq != 0 {
		t.Errorf("Seq = %d in a new transaction, want 0", h.events[1].Seq)
	}

	// A column dropped and the columns reordered: the mapping follows names.
	reordered := []relCol{outboxCols[1], outboxCols[0], outboxCols[2], outboxCols[10]}
	err = feed(d, h, relationMsg(outboxRelID, "public", "outbox", reordered),
		beginMsg(txLSN+0x200, txTime, 3),
		insertMsg(outboxRelID, txt("thing.done"), txt("id-3"), txt("/s"), txt("2026-11-27 08:21:12+00")))
	if err != nil {
		t.Fatal(err)
	}
	if e := h.events[2]; e.ID != "id-3" || e.Type != "thing.done" {
		t.Errorf("after reorder: id %q type %q", e.ID, e.Type)
	}

	// A tuple that does not match the cached relation is an *Error, not a
	// misread.
	err = feed(d, h, insertMsg(outboxRelID, widerRow...))
	if de := decodeError(t, err); !strings.Contains(de.Reason, "columns") {
		t.Errorf("mismatched tuple: %v", de)
	}
}

func TestDecodeDefaultSource(t *testing.T) {
	t.Parallel()
	noSourceCols := slices.DeleteFunc(slices.Clone(outboxCols), func(c relCol) bool { return c.name == "source" })
	for _, tc := range []struct {
		name    string
		cfg     decoder.Config
		cols    []relCol
		row     outboxRow
		want    string // expected source; "" expects an *Error on column source
		wantErr string
	}{
		{"row source wins", decoder.Config{DefaultSource: "/default"}, outboxCols, typicalRow, "/orders", ""},
		{"NULL source takes config default", decoder.Config{DefaultSource: "/default"}, outboxCols, typicalRow.without("source"), "/default", ""},
		{"empty source takes config default", decoder.Config{DefaultSource: "/default"}, outboxCols, typicalRow.with("source", ""), "/default", ""},
		{"table default beats config default", decoder.Config{DefaultSource: "/default", Tables: []decoder.Table{{DefaultSource: "/table"}}}, outboxCols, typicalRow.without("source"), "/table", ""},
		{"no source column takes default", decoder.Config{DefaultSource: "/default"}, noSourceCols, typicalRow, "/default", ""},
		{"NULL source without default", decoder.Config{}, outboxCols, typicalRow.without("source"), "", "no default_source"},
		{"no source column without default", decoder.Config{}, noSourceCols, typicalRow, "", "no default_source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newDecoder(t, tc.cfg)
			h := &recorder{}
			err := feed(d, h, relationMsg(outboxRelID, "public", "outbox", tc.cols), beginMsg(txLSN, txTime, 1),
				insertMsg(outboxRelID, tc.row.vals(tc.cols)...))
			if tc.want == "" {
				de := decodeError(t, err)
				// A missing source column is a relation error; it names the
				// column in its reason.
				if (de.Column != "source" && !strings.Contains(de.Reason, `source column "source"`)) ||
					!strings.Contains(de.Error(), tc.wantErr) {
					t.Errorf("error = %v (column %q), want column source and %q", de, de.Column, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := h.events[0].Source; got != tc.want {
				t.Errorf("Source = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDecodeUnknownRelation(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{})
	err := feed(d, &recorder{}, beginMsg(txLSN, txTime, 1), insertMsg(4242, typicalRow.vals(outboxCols)...))
	if !errors.Is(err, decoder.ErrProtocol) || !strings.Contains(err.Error(), "4242") {
		t.Errorf("error = %v, want ErrProtocol naming relation 4242", err)
	}
}

func TestDecodeSkipsOtherChanges(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{})
	otherCols := []relCol{{name: "id", oid: oidInt4, key: true}, {name: "name", oid: oidText}}
	h := &recorder{}
	err := feed(d, h,
		relationMsg(1, "public", "customers", otherCols),
		outboxRelation(),
		beginMsg(txLSN, txTime, 1),
		outboxInsert(typicalRow),
		updateMsg(outboxRelID, typicalRow.vals(outboxCols)...),
		deleteMsg(outboxRelID, txt("x"), null, null, null, null, null, null, null, null, null, null),
		updateMsg(1, txt("1"), txt("ann")),
		truncateMsg(1, outboxRelID),
		commitMsg(txLSN, txEnd, txTime),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.calls, ""); got != "BEC" {
		t.Errorf("handler calls = %s, want BEC: only the outbox insert is an event", got)
	}
}

func TestDecodeSkipsTypeAndOrigin(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{})
	h := &recorder{}
	err := feed(d, h,
		beginMsg(txLSN, txTime, 1),
		originMsg(0x1234, "upstream"),
		typeMsg(70000, "public", "mood"),
		outboxRelation(),
		outboxInsert(typicalRow),
		commitMsg(txLSN, txEnd, txTime),
		[]byte{'S', 0, 0, 0, 1, 0}, // a stream start of a newer protocol: skipped
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.calls, ""); got != "BEC" {
		t.Errorf("handler calls = %s, want BEC", got)
	}
}

func TestDecodeHandlerErrorStops(t *testing.T) {
	t.Parallel()
	stop := errors.New("window closed")
	d := newDecoder(t, decoder.Config{})
	h := &recorder{onEvent: func(*event.Event) error { return stop }}
	err := feed(d, h, outboxRelation(), beginMsg(txLSN, txTime, 1), outboxInsert(typicalRow))
	if !errors.Is(err, stop) {
		t.Errorf("error = %v, want the handler's", err)
	}
}

func TestDecodeTOASTAndBinaryColumns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		v    val
		want string
	}{
		{"unchanged toast", val{kind: 'u'}, "TOAST"},
		{"binary", val{kind: 'b', data: "\x00\x01"}, "binary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vals := typicalRow.vals(outboxCols)
			vals[6] = tc.v
			d := newDecoder(t, decoder.Config{})
			_, err := decodeTx(d, insertMsg(outboxRelID, vals...))
			if de := decodeError(t, err); de.Column != "data" || !strings.Contains(de.Reason, tc.want) {
				t.Errorf("error = %v, want column data and %q", de, tc.want)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  decoder.Config
		want string
	}{
		{"table twice", decoder.Config{Tables: []decoder.Table{{Name: "outbox"}, {Name: "public.outbox"}}}, "twice"},
		{"no id column", decoder.Config{Tables: []decoder.Table{{Columns: decoder.Columns{ID: "-"}}}}, "required"},
		{"no type column", decoder.Config{Tables: []decoder.Table{{Columns: decoder.Columns{Type: "-"}}}}, "required"},
		{"name with two dots", decoder.Config{Tables: []decoder.Table{{Name: "db.public.outbox"}}}, "schema.table"},
		{"same prefixes", decoder.Config{MessagePrefix: "x", HeartbeatPrefix: "x"}, "differ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := decoder.New(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "decoder: ") {
				t.Errorf("New = %v, want an error prefixed decoder: and containing %q", err, tc.want)
			}
		})
	}
}

func TestFormatLSN(t *testing.T) {
	t.Parallel()
	for lsn, want := range map[uint64]string{
		0:                  "0/0",
		0x16_B374D848:      "16/B374D848",
		0x1_00000000:       "1/0",
		0xFFFFFFFFFFFFFFFF: "FFFFFFFF/FFFFFFFF",
	} {
		if got := decoder.FormatLSN(lsn); got != want {
			t.Errorf("FormatLSN(%#x) = %q, want %q", lsn, got, want)
		}
	}
}
