package decoder

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// The fast timestamp parser agrees with pgtype on every form PostgreSQL
// prints, and declines what it does not know.
func TestParseTimestampMatchesPgtype(t *testing.T) {
	t.Parallel()
	m := pgtype.NewMap()
	for _, s := range []string{
		"2026-11-27 08:21:12.123456+00", "2026-11-27 08:21:12+05:30", "2026-01-02 03:04:05.1-08",
		"1999-12-31 23:59:59.999999+05:45:30", "2026-06-30 12:00:00", "2026-06-30 12:00:00.000001",
	} {
		got, ok := parseTimestamp([]byte(s))
		if !ok {
			t.Errorf("parseTimestamp(%q) declined", s)
			continue
		}
		var want pgtype.Timestamptz
		oid := uint32(pgtype.TimestamptzOID)
		if !strings.ContainsAny(s[19:], "+-") {
			var ts pgtype.Timestamp
			if err := m.Scan(pgtype.TimestampOID, pgtype.TextFormatCode, []byte(s), &ts); err != nil {
				t.Fatal(err)
			}
			want.Time = ts.Time
		} else if err := m.Scan(oid, pgtype.TextFormatCode, []byte(s), &want); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(want.Time) {
			t.Errorf("parseTimestamp(%q) = %v, pgtype says %v", s, got, want.Time)
		}
	}
	for _, s := range []string{"infinity", "0044-03-15 12:00:00+00 BC", "2026-11-27T08:21:12Z", "2026-13-01 00:00:00+00", "2026-11-27 08:21:12.+00", "2026-11-27 08:21:12+0"} {
		if _, ok := parseTimestamp([]byte(s)); ok {
			t.Errorf("parseTimestamp(%q) accepted it", s)
		}
	}
}

// headersSlow is the reference: encoding/json into a map.
func headersSlow(b []byte) ([]event.Extension, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, false
	}
	e := &event.Event{}
	if addExtensions(e, m) != "" {
		return nil, false
	}
	return e.Extensions, true
}

func FuzzParseHeaders(f *testing.F) {
	for _, s := range []string{`{"traceparent": "00-abc", "n": 3, "ok": true, "z": null}`, `{}`, `{"a":"\u00e9\n"}`, `{"A": "x"}`,
		`{"a": {"b": 1}}`, `{"a": [1]}`, `[]`, `{"a": 1e3, "b": -0.5}`, `{"a":"x",}`, `{"a" "x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e := &event.Event{}
		reason := parseHeaders(b, e)
		want, ok := headersSlow(b)
		if ok != (reason == "") {
			// The fast parser may only be stricter on malformed JSON that
			// encoding/json would also reject, never laxer.
			if reason == "" {
				t.Fatalf("parseHeaders accepted %q, encoding/json does not", b)
			}
			if json.Valid(b) {
				t.Fatalf("parseHeaders rejected valid %q: %s", b, reason)
			}
			return
		}
		if !ok {
			return
		}
		cmp := func(a, b event.Extension) int { return strings.Compare(a.Name, b.Name) }
		slices.SortFunc(want, cmp)
		slices.SortFunc(e.Extensions, cmp)
		// encoding/json keeps the last of duplicate keys; jsonb never has them.
		if len(want) == len(e.Extensions) && !slices.Equal(want, e.Extensions) {
			t.Fatalf("parseHeaders(%q) = %v, want %v", b, e.Extensions, want)
		}
	})
}
