package decoder_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

const fullMessage = `{
  "specversion": "1.0",
  "id": "m-1",
  "type": "com.example.thing.done",
  "source": "urn:example:things",
  "subject": "thing-7",
  "datacontenttype": "application/json",
  "dataschema": "https://example.com/schemas/thing.json",
  "time": "2026-11-27T08:21:12.123456+05:30",
  "data": {"a": [1, 2, {"b": null}]},
  "partitionkey": "thing-7",
  "aggregatetype": "thing",
  "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  "count": 3,
  "pglsn": "FF/FF"
}`

func TestDecodeMessageEvent(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{})
	h, err := decodeTx(d, logicalMsg(true, txLSN-8, "outbox", fullMessage))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.calls, ""); got != "BEC" {
		t.Fatalf("handler calls = %s, want BEC", got)
	}
	e := h.events[0]
	if e.ID != "m-1" || e.Type != "com.example.thing.done" || e.Source != "urn:example:things" || e.Subject != "thing-7" ||
		e.DataContentType != "application/json" || e.DataSchema != "https://example.com/schemas/thing.json" {
		t.Errorf("attributes = %+v", e)
	}
	if e.AggregateID != "thing-7" || e.AggregateType != "thing" || e.Table != "" || e.CommitLSN != txLSN || e.Seq != 0 {
		t.Errorf("aggregate %q/%q table %q LSN %X seq %d", e.AggregateType, e.AggregateID, e.Table, e.CommitLSN, e.Seq)
	}
	if want := time.Date(2026, 11, 27, 2, 51, 12, 123456000, time.UTC); !e.Time.Equal(want) || e.Time.Location() != time.UTC {
		t.Errorf("Time = %v, want %v in UTC", e.Time, want)
	}
	if e.DataKind != event.DataJSON || string(e.Data) != `{"a": [1, 2, {"b": null}]}` {
		t.Errorf("Data = %q kind %d", e.Data, e.DataKind)
	}
	// The decoder's pglsn replaces whatever the message claimed.
	want := []event.Extension{
		{Name: "aggregatetype", Value: "thing"},
		{Name: "count", Value: "3"},
		{Name: "partitionkey", Value: "thing-7"},
		{Name: "pglsn", Value: "16/B374D848"},
		{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	}
	if !reflect.DeepEqual(e.Extensions, want) {
		t.Errorf("Extensions = %v\nwant %v", e.Extensions, want)
	}
}

func TestDecodeMessageData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		content  string
		wantKind event.DataKind
		wantData string
	}{
		{"no data", `{"id":"1","type":"t","source":"/s"}`, event.DataNone, ""},
		{"null data", `{"id":"1","type":"t","source":"/s","data":null}`, event.DataNone, ""},
		{"JSON string under default content type", `{"id":"1","type":"t","source":"/s","data":"hi"}`, event.DataJSON, `"hi"`},
		{"text under text/plain", `{"id":"1","type":"t","source":"/s","datacontenttype":"text/plain","data":"hi\n\"there\""}`, event.DataText, "hi\n\"there\""},
		{"base64", `{"id":"1","type":"t","source":"/s","datacontenttype":"application/octet-stream","data_base64":"3q2+7w=="}`, event.DataBinary, "\xde\xad\xbe\xef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := decodeTx(newDecoder(t, decoder.Config{}), logicalMsg(true, txLSN-8, "outbox", tc.content))
			if err != nil {
				t.Fatal(err)
			}
			e := h.events[0]
			if e.DataKind != tc.wantKind || string(e.Data) != tc.wantData {
				t.Errorf("Data = %q kind %d, want %q kind %d", e.Data, e.DataKind, tc.wantData, tc.wantKind)
			}
		})
	}
}

func TestDecodeMessageDefaults(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{DefaultSource: "/default"})
	h, err := decodeTx(d, logicalMsg(true, txLSN-8, "outbox", `{"id":"1","type":"t"}`))
	if err != nil {
		t.Fatal(err)
	}
	e := h.events[0]
	if e.Source != "/default" || !e.Time.Equal(txTime) || e.AggregateID != "" {
		t.Errorf("source %q time %v aggregate id %q; want the default source and the commit time", e.Source, e.Time, e.AggregateID)
	}
	if _, ok := e.Extension(decoder.ExtPartitionKey); ok {
		t.Errorf("partitionkey set without one in the message: %v", e.Extensions)
	}
}

func TestDecodeMessagesAndRowsShareSeq(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{})
	h, err := decodeTx(d,
		outboxInsert(typicalRow.with("id", "r-0")),
		logicalMsg(true, txLSN-8, "outbox", `{"id":"m-1","type":"t","source":"/s"}`),
		outboxInsert(typicalRow.with("id", "r-2")),
	)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"r-0", "m-1", "r-2"} {
		if e := h.events[i]; e.ID != want || e.Seq != i {
			t.Errorf("event %d = %s seq %d, want %s seq %d", i, e.ID, e.Seq, want, i)
		}
	}
}

func TestDecodeMessagePrefixes(t *testing.T) {
	t.Parallel()
	const content = `{"id":"1","type":"t","source":"/s"}`
	for _, tc := range []struct {
		name          string
		cfg           decoder.Config
		prefix        string
		transactional bool
		wantEvent     bool
	}{
		{"default prefix", decoder.Config{}, "outbox", true, true},
		{"heartbeat", decoder.Config{}, decoder.DefaultHeartbeatPrefix, true, false},
		{"heartbeat non-transactional", decoder.Config{}, decoder.DefaultHeartbeatPrefix, false, false},
		{"other prefix", decoder.Config{}, "someone.else", true, false},
		{"prefix is matched whole", decoder.Config{}, "outbox2", true, false},
		{"other prefix non-transactional", decoder.Config{}, "someone.else", false, false},
		{"configured prefix", decoder.Config{MessagePrefix: "events"}, "events", true, true},
		{"default prefix when another is configured", decoder.Config{MessagePrefix: "events"}, "outbox", true, false},
		{"configured heartbeat", decoder.Config{HeartbeatPrefix: "hb"}, "hb", true, false},
		{"disabled", decoder.Config{MessagePrefix: "-"}, "outbox", true, false},
		{"off", decoder.Config{MessagesOff: true}, "outbox", true, false},
		{"off, non-transactional", decoder.Config{MessagesOff: true}, "outbox", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newDecoder(t, tc.cfg)
			h, err := decodeTx(d, logicalMsg(tc.transactional, txLSN-8, tc.prefix, content))
			if err != nil {
				t.Fatal(err)
			}
			if got := len(h.events) == 1; got != tc.wantEvent {
				t.Errorf("event emitted = %v, want %v", got, tc.wantEvent)
			}
		})
	}
	// A heartbeat or a foreign message is not parsed at all: garbage is fine.
	for _, prefix := range []string{decoder.DefaultHeartbeatPrefix, "other"} {
		if _, err := decodeTx(newDecoder(t, decoder.Config{}), logicalMsg(true, txLSN-8, prefix, "\xff not json")); err != nil {
			t.Errorf("prefix %s with non-JSON content: %v", prefix, err)
		}
	}
}

// Issue 8: a non-transactional message with the outbox prefix is never
// dropped quietly: it is an *Error wrapping ErrNonTransactional, at its own
// LSN, with its id and content, for the invalid-row policy.
func TestDecodeNonTransactionalMessage(t *testing.T) {
	t.Parallel()
	const content = `{"id":"nt-1","type":"t","source":"/s"}`
	const msgLSN = txLSN - 0x800
	for _, tc := range []struct {
		name    string
		content string
		id      string
	}{
		{"an event", content, "nt-1"},
		{"garbage", "\xff not json", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &recorder{}
			err := feed(newDecoder(t, decoder.Config{}), h, logicalMsg(false, msgLSN, "outbox", tc.content))
			de := decodeError(t, err)
			if !errors.Is(err, decoder.ErrNonTransactional) || de.LSN != msgLSN || de.RowID != tc.id || de.Table != "message outbox" {
				t.Errorf("Error{Table %q RowID %q LSN %X} (Is ErrNonTransactional: %v), want message outbox, %q, %X, true",
					de.Table, de.RowID, de.LSN, errors.Is(err, decoder.ErrNonTransactional), tc.id, uint64(msgLSN))
			}
			if c := de.Raw["content"]; c == nil || *c != tc.content {
				t.Errorf("Raw[content] = %v, want the content", c)
			}
			if msg := de.Error(); !strings.Contains(msg, "non-transactional") || !strings.Contains(msg, "at LSN "+decoder.FormatLSN(msgLSN)) ||
				strings.Contains(msg, "in transaction") {
				t.Errorf("message %q does not name a non-transactional message at its LSN", msg)
			}
			if len(h.calls) != 0 {
				t.Errorf("handler calls %v, want none", h.calls)
			}
		})
	}
	// Also inside a transaction (the server sends it between transactions,
	// but the flag decides).
	_, err := decodeTx(newDecoder(t, decoder.Config{}), logicalMsg(false, txLSN-8, "outbox", content))
	if !errors.Is(err, decoder.ErrNonTransactional) {
		t.Errorf("non-transactional message inside a transaction: %v, want ErrNonTransactional", err)
	}
}

func TestDecodeMessagePrefixDisabledMatchesNothing(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{MessagePrefix: "-"})
	h, err := decodeTx(d, logicalMsg(true, txLSN-8, "-", `{"id":"1","type":"t","source":"/s"}`))
	if err != nil || len(h.events) != 0 {
		t.Errorf("disabled message events: err %v, %d events; want none", err, len(h.events))
	}
}

func TestDecodeMessageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		content string
		column  string
		reason  string
	}{
		{"not JSON", `{"id": "1", "type":`, "", "not a CloudEvent in JSON"},
		{"JSON array", `[{"id":"1"}]`, "", "not a CloudEvent in JSON"},
		{"empty", ``, "", "not a CloudEvent in JSON"},
		{"missing id", `{"type":"t","source":"/s"}`, "id", "missing"},
		{"empty id", `{"id":"","type":"t","source":"/s"}`, "id", "empty"},
		{"id not a string", `{"id":7,"type":"t","source":"/s"}`, "id", "must be a string"},
		{"missing type", `{"id":"1","source":"/s"}`, "type", "missing"},
		{"missing source without default", `{"id":"1","type":"t"}`, "source", "default_source"},
		{"source with spaces", `{"id":"1","type":"t","source":"my source"}`, "source", "white space"},
		{"specversion 0.3", `{"specversion":"0.3","id":"1","type":"t","source":"/s"}`, "specversion", "1.0"},
		{"bad time", `{"id":"1","type":"t","source":"/s","time":"yesterday"}`, "time", "RFC 3339"},
		{"relative dataschema", `{"id":"1","type":"t","source":"/s","dataschema":"/x"}`, "dataschema", "absolute URI"},
		{"data and data_base64", `{"id":"1","type":"t","source":"/s","data":{},"data_base64":"AA=="}`, "data_base64", "not both"},
		{"bad base64", `{"id":"1","type":"t","source":"/s","data_base64":"!!"}`, "data_base64", "base64"},
		{"partitionkey not a string", `{"id":"1","type":"t","source":"/s","partitionkey":5}`, "partitionkey", "string"},
		{"extension name upper case", `{"id":"1","type":"t","source":"/s","traceParent":"x"}`, "", "traceParent"},
		{"extension object", `{"id":"1","type":"t","source":"/s","ext":{"a":1}}`, "", "an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := decodeTx(newDecoder(t, decoder.Config{}), logicalMsg(true, txLSN-8, "outbox", tc.content))
			de := decodeError(t, err)
			if len(h.events) != 0 {
				t.Errorf("an event was emitted: %+v", h.events[0])
			}
			if de.Table != "message outbox" || de.LSN != txLSN || de.Column != tc.column || !strings.Contains(de.Reason, tc.reason) {
				t.Errorf("Error{Table %q LSN %X Column %q Reason %q}, want {message outbox %X %q ...%s...}",
					de.Table, de.LSN, de.Column, de.Reason, txLSN, tc.column, tc.reason)
			}
			if c := de.Raw["content"]; c == nil || *c != tc.content {
				t.Errorf("Raw[content] = %v, want the message content", c)
			}
			if msg := de.Error(); !strings.Contains(msg, "message outbox") || !strings.Contains(msg, "16/B374D848") {
				t.Errorf("message %q does not name the prefix and the LSN", msg)
			}
			if errors.Is(err, decoder.ErrProtocol) {
				t.Errorf("a bad message content is not a protocol error: %v", err)
			}
		})
	}
}

func TestDecodeMessageErrorNamesID(t *testing.T) {
	t.Parallel()
	_, err := decodeTx(newDecoder(t, decoder.Config{}),
		logicalMsg(true, txLSN-8, "outbox", `{"id":"m-1","type":"t","source":"my source"}`))
	if de := decodeError(t, err); de.RowID != "m-1" || !strings.Contains(de.Error(), "m-1") {
		t.Errorf("Error{RowID %q} %q, want the message id m-1", de.RowID, de.Error())
	}
}

// Under a dead-letter policy the stream goes on after a bad input. Every
// input, good or bad, has its own position in the transaction, so the
// dead-letter store can tell two bad ones apart and knows one decoded again;
// the events keep their own numbering.
func TestDecodeErrorPositions(t *testing.T) {
	t.Parallel()
	d := newDecoder(t, decoder.Config{})
	h := &recorder{}
	var pos []int
	for round := 0; round < 2; round++ { // the same transaction again, as after a restart
		pos = pos[:0]
		h.events = nil
		for _, m := range [][]byte{outboxRelation(), beginMsg(txLSN, txTime, 777),
			logicalMsg(true, txLSN-8, "outbox", "not json 1"),
			outboxInsert(typicalRow.with("id", "r-1")),
			logicalMsg(true, txLSN-8, "outbox", "not json 2"),
			outboxInsert(typicalRow.with("id", "r-3")),
			commitMsg(txLSN, txEnd, txTime)} {
			if err := d.Decode(0, m, h); err != nil {
				de := decodeError(t, err)
				if de.LSN != txLSN {
					t.Errorf("error LSN %X, want %X", de.LSN, txLSN)
				}
				pos = append(pos, de.Pos)
			}
		}
		if len(pos) != 2 || pos[0] != 0 || pos[1] != 2 {
			t.Errorf("round %d: error positions %v, want [0 2]", round, pos)
		}
		if len(h.events) != 2 || h.events[0].Seq != 0 || h.events[1].Seq != 1 {
			t.Errorf("round %d: %d events, want r-1 and r-3 numbered 0 and 1", round, len(h.events))
		}
	}
}
