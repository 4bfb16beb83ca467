package decoder

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzJSONChecker holds the I-JSON checker to encoding/json: whatever it
// accepts encoding/json accepts and reads back unchanged in meaning (no
// U+FFFD introduced), and what encoding/json accepts it refuses only for an
// I-JSON rule, never for syntax.
func FuzzJSONChecker(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":2}`, `["\ud800"]`, `["\ud83d\ude00"]`, `{"a":{"b":[1,2,{"b":3}]}}`,
		`"\uffff"`, "\"\xe9\"", `-0.5e+10`, `01`, `{"\u0061":1,"a":2}`, `[1,]`, ` true `, `nul`, `"\u00"`, "[\"\x01\"]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c jsonChecker
		reason, syntax := c.check(b)
		valid := json.Valid(b)
		if reason == "" {
			if !valid || !utf8.Valid(b) {
				t.Fatalf("accepted %q, which encoding/json refuses or is not UTF-8", b)
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("accepted %q: %v", b, err)
			}
			if out, _ := json.Marshal(v); strings.ContainsRune(string(out), utf8.RuneError) && !strings.ContainsRune(string(b), utf8.RuneError) && !strings.Contains(strings.ToLower(string(b)), `\ufffd`) {
				t.Fatalf("accepted %q, but encoding/json reads a U+FFFD into it", b)
			}
			return
		}
		if valid && syntax {
			t.Fatalf("encoding/json accepts %q but the checker says syntax: %s", b, reason)
		}
	})
}

// FuzzURIRef holds the RFC 3986 check to net/url: what it accepts is
// printable ASCII without white space, and net/url parses it.
func FuzzURIRef(f *testing.F) {
	for _, s := range []string{"/orders", "https://u@h:1/p?q#f", "urn:a:b", "//h", "a:b", "1a:b", "/a b", "/%zz", "http://[::1]/",
		"http://[v7.x]/", "/café", "?#", "a/b:c", "http://h:p/", "mailto:x@y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		abs, reason := parseURIRef(s)
		if reason != "" {
			return
		}
		for i := 0; i < len(s); i++ {
			if s[i] <= ' ' || s[i] >= 0x7f {
				t.Fatalf("accepted %q with byte 0x%02x", s, s[i])
			}
		}
		if strings.Contains(s, "[v") || strings.Contains(s, "[V") {
			return // IPvFuture: net/url does not know it
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("accepted %q, net/url: %v", s, err)
		}
		if abs != (u.Scheme != "") {
			t.Fatalf("%q: absolute %v, net/url scheme %q", s, abs, u.Scheme)
		}
	})
}
