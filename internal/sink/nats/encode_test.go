package nats

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// The example of section 3.1.3.2 of the CloudEvents NATS protocol binding.
func TestPercentEncodingSpecExample(t *testing.T) {
	t.Parallel()
	got := string(appendPct(nil, "Euro \u20ac \U0001F600"))
	if want := "Euro%20%E2%82%AC%20%F0%9F%98%80"; got != want {
		t.Fatalf("appendPct = %q, want %q", got, want)
	}
}

func TestPercentEncoding(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"abc-123_~!#$&'()*+,/:;<=>?@[\\]^`{|}", "abc-123_~!#$&'()*+,/:;<=>?@[\\]^`{|}"},
		{"a b", "a%20b"},
		{`say "hi"`, "say%20%22hi%22"},
		{"100%", "100%25"},
		{"tab\there\r\n", "tab%09here%0D%0A"},
		{"\x7f\x00", "%7F%00"},
		{"caf\u00e9", "caf%C3%A9"},
		{"bad\xffutf8", "bad%EF%BF%BDutf8"},
	} {
		if got := needsPct(tc.in); got != (tc.in != tc.want) {
			t.Errorf("needsPct(%q) = %v", tc.in, got)
		}
		if got := string(appendPct(nil, tc.in)); got != tc.want {
			t.Errorf("appendPct(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// pctDecode undoes the binding's percent-encoding the way a receiver must:
// unquote a double-quoted value, decode %XY (either case) and reject
// invalid UTF-8.
func pctDecode(v string) (string, bool) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		for i := 1; i < len(v)-1; i++ {
			if v[i] == '\\' && i+1 < len(v)-1 {
				i++
			}
			b.WriteByte(v[i])
		}
		v = b.String()
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			out = append(out, v[i])
			continue
		}
		if i+2 >= len(v) {
			return "", false
		}
		hi, ok1 := unhex(v[i+1])
		lo, ok2 := unhex(v[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	if !utf8.Valid(out) {
		return "", false
	}
	return string(out), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func FuzzPercentEncoding(f *testing.F) {
	for _, s := range []string{"", "plain", "a b", "100%", `"q"`, "Euro \u20ac \U0001F600", "\xff\xfe", "\r\n\t\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := appendPct(nil, s)
		for _, c := range enc {
			if c <= ' ' || c >= 0x7f || c == '"' {
				t.Fatalf("appendPct(%q) = %q holds byte %#x", s, enc, c)
			}
		}
		dec, ok := pctDecode(string(enc))
		if !ok {
			t.Fatalf("appendPct(%q) = %q does not decode", s, enc)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		// ToValidUTF8 merges a run of invalid bytes into one U+FFFD; the
		// encoder replaces each byte.
		if utf8.ValidString(s) && dec != s {
			t.Fatalf("round trip of %q = %q", s, dec)
		}
		if !utf8.ValidString(s) && strings.ReplaceAll(dec, "\ufffd", "") != strings.ReplaceAll(want, "\ufffd", "") {
			t.Fatalf("round trip of invalid %q = %q", s, dec)
		}
		if !needsPct(s) && string(enc) != s {
			t.Fatalf("needsPct(%q) = false but appendPct changed it to %q", s, enc)
		}
	})
}

func sampleEvent() *event.Event {
	return &event.Event{
		ID:              "id 1",
		Source:          "/db/public.outbox",
		Type:            "order.created",
		Subject:         "caf\u00e9",
		DataContentType: "application/json",
		DataSchema:      "https://example.com/s.json",
		Time:            time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC),
		Extensions:      []event.Extension{{Name: "partitionkey", Value: "a-1"}, {Name: "pglsn", Value: "0/16B3748"}},
		Data:            []byte(`{"x":1}`),
		DataKind:        event.DataJSON,
		AggregateType:   "orders",
		AggregateID:     "a-1",
	}
}

func TestEncodeBinary(t *testing.T) {
	t.Parallel()
	enc := newEncoder(false)
	e := sampleEvent()
	var p entry
	enc.encode(e, "outbox.orders", &p)
	want := map[string]string{
		"ce-specversion":     "1.0",
		"ce-id":              "id%201",
		"ce-source":          "/db/public.outbox",
		"ce-type":            "order.created",
		"ce-subject":         "caf%C3%A9",
		"ce-time":            "2026-01-02T03:04:05.678901Z",
		"ce-datacontenttype": "application/json",
		"ce-dataschema":      "https://example.com/s.json",
		"ce-partitionkey":    "a-1",
		"ce-pglsn":           "0/16B3748",
		"Nats-Msg-Id":        "/db/public.outbox|id%201", // source + id: event.DedupKey
	}
	if len(p.msg.Header) != len(want) {
		t.Errorf("header has %d keys, want %d: %v", len(p.msg.Header), len(want), p.msg.Header)
	}
	for k, v := range want {
		if got := p.msg.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %q, want [%q]", k, got, v)
		}
	}
	if p.msg.Subject != "outbox.orders" || !bytes.Equal(p.msg.Data, e.Data) || p.id != "/db/public.outbox|id%201" || p.e != e {
		t.Errorf("entry = %+v", p)
	}

	// The chain header goes into the reserved slot and comes out again.
	s := &Sink{strict: true}
	s.chain(&p, "prev")
	if got := p.msg.Header.Get(hdrExpectLast); got != "prev" {
		t.Errorf("%s = %q after chain", hdrExpectLast, got)
	}
	s.chain(&p, "")
	if _, ok := p.msg.Header[hdrExpectLast]; ok {
		t.Errorf("%s still set after chain with no predecessor", hdrExpectLast)
	}

	// Optional attributes are omitted, data of kind none is no payload.
	e2 := &event.Event{ID: "2", Source: "s", Type: "t", DataKind: event.DataNone, Data: []byte("ignored")}
	var p2 entry
	enc.encode(e2, "x", &p2)
	for _, k := range []string{"ce-subject", "ce-time", "ce-datacontenttype", "ce-dataschema", "content-type"} {
		if _, ok := p2.msg.Header[k]; ok {
			t.Errorf("header %s set for an event without it", k)
		}
	}
	if p2.msg.Data != nil {
		t.Errorf("payload %q for DataNone", p2.msg.Data)
	}
}

func TestEncodeStructured(t *testing.T) {
	t.Parallel()
	enc := newEncoder(true)
	var payloads [][]byte
	for i := 0; i < 200; i++ { // enough to span arena chunks
		e := sampleEvent()
		e.Data = bytes.Repeat([]byte("7"), i*40)
		var p entry
		enc.encode(e, "outbox.orders", &p)
		if got := p.msg.Header.Get("content-type"); got != structuredContentType {
			t.Fatalf("content-type = %q", got)
		}
		if got := p.msg.Header.Get("Nats-Msg-Id"); got != "/db/public.outbox|id%201" {
			t.Fatalf("Nats-Msg-Id = %q", got)
		}
		if len(p.msg.Header) != 2 {
			t.Fatalf("header = %v", p.msg.Header)
		}
		payloads = append(payloads, p.msg.Data)
	}
	// Earlier payloads are not overwritten by later ones.
	for i, got := range payloads {
		e := sampleEvent()
		e.Data = bytes.Repeat([]byte("7"), i*40)
		if want := e.AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("payload %d = %s, want %s", i, got, want)
		}
	}
}

func TestEncodeAllocations(t *testing.T) {
	enc := newEncoder(false)
	e := sampleEvent()
	e.Subject = "plain"
	e.ID = "plain-id"
	var p entry
	allocs := testing.AllocsPerRun(1000, func() { enc.encode(e, "outbox.orders", &p) })
	// The header map (a map of 12 entries is three allocations), the value
	// array and the string holding the message id (source + id); the
	// message itself is part of the pooled entry, the time string is
	// reused for an equal time, and nothing needs percent-encoding.
	if allocs > 7 {
		t.Errorf("encode makes %v allocations per event, want at most 7", allocs)
	}
}
