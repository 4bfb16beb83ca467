package event_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
)

// cloudEventsSchema is the CloudEvents 1.0 JSON Schema with format
// assertions on.
func cloudEventsSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	return sinktest.Schema(t)
}

func validate(t *testing.T, out []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	return cloudEventsSchema(t).Validate(inst)
}

// TestSchemaRejects proves the validator has teeth: format assertions are on.
func TestSchemaRejects(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]string{
		"no id":          `{"specversion":"1.0","source":"/s","type":"t"}`,
		"bad time":       `{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"27 Nov 2026"}`,
		"year 10000":     `{"specversion":"1.0","id":"1","source":"/s","type":"t","time":"10000-01-01T00:00:00Z"}`,
		"bad dataschema": `{"specversion":"1.0","id":"1","source":"/s","type":"t","dataschema":"not a uri"}`,
		"bad source":     `{"specversion":"1.0","id":"1","source":"http://[::1","type":"t"}`,
		"empty subject":  `{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":""}`,
	} {
		if err := validate(t, []byte(doc)); err == nil {
			t.Errorf("%s: schema accepts %s", name, doc)
		}
	}
}

var (
	// The time has nanoseconds and a zone: the output is microseconds in UTC.
	eventTime = time.Date(2026, 11, 27, 13, 51, 12, 123456789, time.FixedZone("IST", 5*3600+1800))
	wantTime  = time.Date(2026, 11, 27, 8, 21, 12, 123456000, time.UTC)
)

func fullEvent() *event.Event {
	return &event.Event{
		ID:              "0b6a4c1e-6a43-4f3b-9d6c-8f1f0c3a2b11",
		Source:          "https://example.com/orders?x=1&y=<2>",
		Type:            "com.example.order.created",
		Subject:         "order \"42\"\n",
		DataContentType: "application/json; charset=utf-8",
		DataSchema:      "https://example.com/schemas/order.json",
		Time:            eventTime,
		Extensions: []event.Extension{
			{Name: "partitionkey", Value: "42"},
			{Name: "pglsn", Value: "16/B374D848"},
			{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			{Name: "weird", Value: "tab\there \u2028 \\ \x01"},
		},
		Data:     []byte(`{"lines": [{"sku": "A-1", "qty": 2}], "total": 10.5, "note": "caf\u00e9 \u2028"}`),
		DataKind: event.DataJSON,
	}
}

func TestAppendJSONRoundTrip(t *testing.T) {
	t.Parallel()
	textEvent := fullEvent()
	textEvent.DataContentType = "text/plain"
	textEvent.Data = []byte("line 1\nline \"2\"\t\u2028 caf\u00e9 </script>")
	textEvent.DataKind = event.DataText

	binEvent := fullEvent()
	binEvent.DataContentType = "application/octet-stream"
	binEvent.Data = []byte{0, 1, 2, 0xfe, 0xff, '"', '\\'}
	binEvent.DataKind = event.DataBinary

	defaultCT := fullEvent()
	defaultCT.DataContentType = ""
	defaultCT.Data = []byte(`{"a":1}`)

	minimal := &event.Event{ID: "1", Source: "/s", Type: "t"}

	for _, tc := range []struct {
		name string
		e    *event.Event
	}{
		{"json data", fullEvent()},
		{"json data, default content type", defaultCT},
		{"text data", textEvent},
		{"binary data", binEvent},
		{"minimal", minimal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := tc.e
			prefix := []byte("keep me:")
			out := e.AppendJSON(bytes.Clone(prefix))
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("AppendJSON overwrote dst: %q", out)
			}
			out = out[len(prefix):]
			if !json.Valid(out) {
				t.Fatalf("not valid JSON: %s", out)
			}
			if err := validate(t, out); err != nil {
				t.Errorf("schema: %v\n%s", err, out)
			}

			var got ce.Event
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("SDK: %v\n%s", err, out)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("SDK Validate: %v", err)
			}
			if got.SpecVersion() != "1.0" || got.ID() != e.ID || got.Source() != e.Source || got.Type() != e.Type ||
				got.Subject() != e.Subject || got.DataSchema() != e.DataSchema {
				t.Errorf("SDK read specversion %q id %q source %q type %q subject %q dataschema %q",
					got.SpecVersion(), got.ID(), got.Source(), got.Type(), got.Subject(), got.DataSchema())
			}
			if got.DataContentType() != e.DataContentType {
				t.Errorf("datacontenttype = %q, want %q", got.DataContentType(), e.DataContentType)
			}
			if e.Time.IsZero() {
				if !got.Time().IsZero() {
					t.Errorf("time = %v, want none", got.Time())
				}
			} else if !got.Time().Equal(wantTime) {
				t.Errorf("time = %v, want %v (microseconds, UTC)", got.Time(), wantTime)
			}
			wantExt := map[string]any{}
			for _, x := range e.Extensions {
				wantExt[x.Name] = x.Value
			}
			if gotExt := got.Extensions(); len(wantExt) > 0 || len(gotExt) > 0 {
				if !reflect.DeepEqual(map[string]any(gotExt), wantExt) {
					t.Errorf("extensions = %v, want %v", gotExt, wantExt)
				}
			}

			switch e.DataKind {
			case event.DataNone:
				if got.Data() != nil {
					t.Errorf("data = %q, want none", got.Data())
				}
			case event.DataJSON:
				if got.DataBase64 || !jsonEqual(t, got.Data(), e.Data) {
					t.Errorf("data = %s (base64 %v), want %s", got.Data(), got.DataBase64, e.Data)
				}
			case event.DataText:
				if got.DataBase64 || !bytes.Equal(got.Data(), e.Data) {
					t.Errorf("data = %q (base64 %v), want %q", got.Data(), got.DataBase64, e.Data)
				}
			case event.DataBinary:
				if !got.DataBase64 || !bytes.Equal(got.Data(), e.Data) {
					t.Errorf("data = %q (base64 %v), want %q as data_base64", got.Data(), got.DataBase64, e.Data)
				}
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// TestAppendJSONMembers pins the member names and forms of the JSON event
// format: which members appear, and how time and data are written.
func TestAppendJSONMembers(t *testing.T) {
	t.Parallel()
	e := fullEvent()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(e.AppendJSON(nil), &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema",
		"partitionkey", "pglsn", "traceparent", "weird", "data"}
	if len(m) != len(want) {
		t.Errorf("members = %d, want %d: %v", len(m), len(want), keys(m))
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("member %q missing", k)
		}
	}
	if got := string(m["time"]); got != `"2026-11-27T08:21:12.123456Z"` {
		t.Errorf("time = %s, want \"2026-11-27T08:21:12.123456Z\"", got)
	}
	if got := string(m["data"]); got != string(e.Data) {
		t.Errorf("JSON data = %s, want embedded as is: %s", got, e.Data)
	}

	// Optional attributes and data are left out when empty.
	min := (&event.Event{ID: "1", Source: "/s", Type: "t"}).AppendJSON(nil)
	if got := string(min); got != `{"specversion":"1.0","id":"1","source":"/s","type":"t"}` {
		t.Errorf("minimal event = %s", got)
	}
	bin := (&event.Event{ID: "1", Source: "/s", Type: "t", Data: []byte{0xff}, DataKind: event.DataBinary}).AppendJSON(nil)
	if !bytes.HasSuffix(bin, []byte(`,"data_base64":"/w=="}`)) || bytes.Contains(bin, []byte(`"data":`)) {
		t.Errorf("binary event = %s", bin)
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestAppendTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{eventTime, "2026-11-27T08:21:12.123456Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 500000000, time.UTC), "2026-01-02T03:04:05.5Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC), "2026-01-02T03:04:05Z"},
		{time.Date(2026, 1, 1, 0, 30, 0, 0, time.FixedZone("", 3600)), "2025-12-31T23:30:00Z"},
	} {
		got := string(event.AppendTime(nil, tc.in))
		if got != tc.want {
			t.Errorf("AppendTime(%v) = %s, want %s", tc.in, got, tc.want)
		}
		if _, err := time.Parse(time.RFC3339Nano, got); err != nil {
			t.Errorf("AppendTime(%v) = %s is not RFC 3339: %v", tc.in, got, err)
		}
	}
}

// AppendTime writes what time.Time.AppendFormat writes with its layout, for
// every year, zone and fraction, including the years it leaves to
// AppendFormat.
func TestAppendTimeMatchesAppendFormat(t *testing.T) {
	t.Parallel()
	times := []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 6, 7, 8, 9, 10, 120000, time.FixedZone("x", -7*3600)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 4, 5, 6, 7, 891011000, time.FixedZone("y", 5*3600+1800)),
	}
	for i := 0; i < 10000; i++ {
		times = append(times, time.Unix(0, 0).Add(time.Duration(i)*7919*time.Hour+time.Duration(i*i)*time.Microsecond+time.Duration(i%1000)))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat(nil, "2006-01-02T15:04:05.999999Z07:00")
		if got := event.AppendTime(nil, tm); string(got) != string(want) {
			t.Fatalf("AppendTime(%v) = %q, want %q", tm, got, want)
		}
	}
}

// BenchmarkAppendTime compares AppendTime with the time package's
// AppendFormat, which it replaces on every event.
func BenchmarkAppendTime(b *testing.B) {
	tm := time.Date(2026, 11, 27, 8, 21, 12, 123456789, time.UTC)
	buf := make([]byte, 0, 64)
	b.Run("AppendTime", func(b *testing.B) {
		for b.Loop() {
			buf = event.AppendTime(buf[:0], tm)
		}
	})
	b.Run("AppendFormat", func(b *testing.B) {
		for b.Loop() {
			buf = tm.UTC().AppendFormat(buf[:0], "2006-01-02T15:04:05.999999Z07:00")
		}
	})
}

// TestAppendJSONAllocs holds AppendJSON to its promise: no allocation beyond
// growing dst.
func TestAppendJSONAllocs(t *testing.T) {
	bin := fullEvent()
	bin.Data, bin.DataKind = []byte{1, 2, 3, 4, 5}, event.DataBinary
	text := fullEvent()
	text.Data, text.DataKind = []byte("some text"), event.DataText
	for _, tc := range []struct {
		name string
		e    *event.Event
		max  float64
	}{
		{"json", fullEvent(), 0},
		{"binary", bin, 0},
		{"text", text, 1}, // the documented string copy of text data
	} {
		buf := make([]byte, 0, 4096)
		allocs := testing.AllocsPerRun(100, func() { buf = tc.e.AppendJSON(buf[:0]) })
		if allocs > tc.max {
			t.Errorf("%s: %v allocations per AppendJSON into a large enough buffer, want at most %v", tc.name, allocs, tc.max)
		}
	}
}

var trickyStrings = []string{
	"",
	"plain",
	`"quoted"`,
	`back\slash`,
	"\x00\x01\x02\x1f\x7f",
	"\b\f\n\r\t",
	"\u2028 line separator \u2029 paragraph separator",
	"<script>&amp;</script>",
	"caf\u00e9 \u65e5\u672c \U0001F600",
	"\xff invalid",
	"trailing invalid \xe2\x82",
	"\xed\xa0\x80 surrogate half",
	"\xc0\xaf overlong",
	"\ufffd literal replacement char",
	strings.Repeat("a\"b\\c\n", 100),
}

// TestAppendJSONStringMatchesEncodingJSON decodes our output and
// encoding/json's for the same string: they must decode to the same value.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range trickyStrings {
		out := event.AppendJSONString(nil, s)
		std, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var got, want string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Errorf("AppendJSONString(%q) = %s: not a JSON string: %v", s, out, err)
			continue
		}
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("AppendJSONString(%q) decodes to %q, encoding/json's to %q", s, got, want)
		}
		checkEscaped(t, s, out)
	}
}

// checkEscaped: no raw control character, and no raw U+2028/U+2029 (which
// break JavaScript that embeds the JSON), inside the quotes.
func checkEscaped(t *testing.T, s string, out []byte) {
	t.Helper()
	if len(out) < 2 || out[0] != '"' || out[len(out)-1] != '"' {
		t.Errorf("AppendJSONString(%q) = %s is not quoted", s, out)
		return
	}
	for _, r := range string(out[1 : len(out)-1]) {
		if r < 0x20 || r == '\u2028' || r == '\u2029' {
			t.Errorf("AppendJSONString(%q) = %q has a raw %U", s, out, r)
		}
	}
	if !utf8.Valid(out) {
		t.Errorf("AppendJSONString(%q) = %q is not valid UTF-8", s, out)
	}
}

func TestIsJSONContentType(t *testing.T) {
	t.Parallel()
	for ct, want := range map[string]bool{
		"":                                    true,
		"application/json":                    true,
		"Application/JSON":                    true,
		"application/json; charset=utf-8":     true,
		"application/json;charset=UTF-8":      true,
		" application/json ":                  true,
		"text/json":                           true,
		"application/cloudevents+json":        true,
		"application/vnd.api+json; version=1": true,
		"application/ld+json":                 true,
		"text/plain":                          false,
		"application/octet-stream":            false,
		"application/jsonl":                   false,
		"application/json-seq":                false,
		"application/x-json-stream":           false,
		"application/xml":                     false,
		"text/plain; format=json":             false,
		"application/vnd.foojson":             false,
	} {
		if got := event.IsJSONContentType(ct); got != want {
			t.Errorf("IsJSONContentType(%q) = %v, want %v", ct, got, want)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	for _, tc := range []struct {
		name string
		kind event.DataKind
		data []byte
	}{
		{"json", event.DataJSON, fullEvent().Data},
		{"text", event.DataText, []byte("some text with \"quotes\" and a newline\n")},
		{"binary", event.DataBinary, bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 16)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := fullEvent()
			e.Data, e.DataKind = tc.data, tc.kind
			buf := e.AppendJSON(nil)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf = e.AppendJSON(buf[:0])
			}
		})
	}
}
