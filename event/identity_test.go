package event_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// The documented dedup key format, pinned: source and id percent-encoded
// (space, '"', '%', '|' and everything outside printable ASCII), joined by
// '|'; longer than MaxDedupKeyLen bytes, "%sha256:" and the hex SHA-256 of
// that text.
func TestDedupKeyVectors(t *testing.T) {
	t.Parallel()
	long := "/" + strings.Repeat("s", 300)
	hashed := func(readable string) string {
		h := sha256.Sum256([]byte(readable))
		return "%sha256:" + hex.EncodeToString(h[:])
	}
	for _, tc := range []struct{ source, id, want string }{
		{"/shipping", "1001", "/shipping|1001"},
		{"/returns", "1001", "/returns|1001"},
		{"https://example.com/a?b=c#d", "09bea3a9-4c17-4998-b980-f8d26fed39a1", "https://example.com/a?b=c#d|09bea3a9-4c17-4998-b980-f8d26fed39a1"},
		// A separator inside source or id is escaped, so these two differ.
		{"/a|b", "c", "/a%7Cb|c"},
		{"/a", "b|c", "/a|b%7Cc"},
		{`urn:x y`, `id"1%`, "urn:x%20y|id%221%25"},
		{"/s", "café", "/s|caf%C3%A9"},
		{"/s", "\x00\r\n\x7f", "/s|%00%0D%0A%7F"},
		{"/s", "\xff", "/s|%FF"}, // not UTF-8: kept byte for byte
		{"", "", "|"},
		// The hashed form for long keys.
		{long, "1", hashed(long + "|1")},
		{"/s", "%sha256:" + strings.Repeat("0", 64), "/s|%25sha256:" + strings.Repeat("0", 64)},
	} {
		if got := event.DedupKey(tc.source, tc.id); got != tc.want {
			t.Errorf("DedupKey(%q, %q) = %q, want %q", tc.source, tc.id, got, tc.want)
		}
		e := &event.Event{Source: tc.source, ID: tc.id}
		if got := e.DedupKey(); got != tc.want {
			t.Errorf("Event.DedupKey() = %q, want %q", got, tc.want)
		}
		if got := string(event.AppendDedupKey([]byte("x"), tc.source, tc.id)); got != "x"+tc.want {
			t.Errorf("AppendDedupKey = %q, want %q", got, "x"+tc.want)
		}
	}
}

// A key of exactly MaxDedupKeyLen bytes stays readable; one byte more is
// hashed.
func TestDedupKeyLengthBound(t *testing.T) {
	t.Parallel()
	id := strings.Repeat("i", event.MaxDedupKeyLen-len("/s|"))
	if got := event.DedupKey("/s", id); got != "/s|"+id {
		t.Errorf("key of %d bytes was not kept as is: %q", event.MaxDedupKeyLen, got)
	}
	got := event.DedupKey("/s", id+"i")
	if !strings.HasPrefix(got, "%sha256:") || len(got) != len("%sha256:")+64 {
		t.Errorf("key of %d bytes = %q, want the hashed form", event.MaxDedupKeyLen+1, got)
	}
	// Escaping counts: 100 spaces are 300 bytes once encoded.
	if got := event.DedupKey("/s", strings.Repeat(" ", 100)); !strings.HasPrefix(got, "%sha256:") {
		t.Errorf("escaped key over the bound not hashed: %q", got)
	}
}

// FuzzDedupKey: every key is a valid NATS header value and Redis key of at
// most MaxDedupKeyLen bytes (printable ASCII, no space); a readable key
// splits at its only raw '|' and decodes back to the source and id, so two
// different pairs never share a readable key; a hashed key cannot be
// mistaken for a readable one.
func FuzzDedupKey(f *testing.F) {
	f.Add("/shipping", "1001")
	f.Add("/a|b", "c|d")
	f.Add("%sha256:", "%7C")
	f.Add(strings.Repeat("€", 100), "x")
	f.Fuzz(func(t *testing.T, source, id string) {
		k := event.DedupKey(source, id)
		if len(k) > event.MaxDedupKeyLen {
			t.Fatalf("key of %d bytes", len(k))
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; c <= ' ' || c >= 0x7f || c == '"' {
				t.Fatalf("key %q has byte %#x at %d", k, c, i)
			}
		}
		if strings.HasPrefix(k, "%sha256:") {
			if strings.Contains(k, "|") {
				t.Fatalf("hashed key %q has a '|'", k)
			}
			return
		}
		if strings.Count(k, "|") != 1 {
			t.Fatalf("readable key %q must have exactly one raw '|'", k)
		}
		s, i, _ := strings.Cut(k, "|")
		if got, ok := unescape(s); !ok || got != source {
			t.Fatalf("key %q: source part decodes to %q (ok=%v), want %q", k, got, ok, source)
		}
		if got, ok := unescape(i); !ok || got != id {
			t.Fatalf("key %q: id part decodes to %q (ok=%v), want %q", k, got, ok, id)
		}
	})
}

// unescape reverses the key's percent-encoding; it refuses a '%' not followed
// by two upper-case hex digits.
func unescape(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		v, err := hex.DecodeString(s[i+1 : i+3])
		if err != nil || strings.ToUpper(s[i+1:i+3]) != s[i+1:i+3] {
			return "", false
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), true
}

func TestLSNText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lsn  uint64
		text string
	}{
		{0, "0/0"},
		{0x16B3748, "0/16B3748"},
		{0x16_B374D848, "16/B374D848"},
		{^uint64(0), "FFFFFFFF/FFFFFFFF"},
	} {
		if got := event.FormatLSN(tc.lsn); got != tc.text {
			t.Errorf("FormatLSN(%#x) = %q, want %q", tc.lsn, got, tc.text)
		}
		if got, err := event.ParseLSN(tc.text); err != nil || got != tc.lsn {
			t.Errorf("ParseLSN(%q) = %#x, %v; want %#x", tc.text, got, err, tc.lsn)
		}
	}
	if got, err := event.ParseLSN("16/b374d848"); err != nil || got != 0x16_B374D848 {
		t.Errorf("ParseLSN of lower-case hex = %#x, %v", got, err)
	}
	for _, bad := range []string{"", "1", "/1", "1/", "x/1", "1/1/1", "100000000/0", "0/100000000", "-1/0", " 0/1", "1"} {
		if _, err := event.ParseLSN(bad); err == nil {
			t.Errorf("ParseLSN(%q) accepted", bad)
		}
	}
}
