package dlq

import (
	"testing"
	"unicode/utf8"
)

func TestTextColumnValues(t *testing.T) {
	for _, tc := range []struct{ in, plain, ascii string }{
		{"order-1", "order-1", "order-1"},
		{"café", "café", `caf\u00e9`},
		{"a\x00b", `a\u0000b`, `a\x00b`},
		{"bad \xff byte", "bad \ufffd byte", `bad \xff byte`},
	} {
		if got := plainText(tc.in); got != tc.plain || !utf8.ValidString(got) {
			t.Errorf("plainText(%q) = %q, want %q", tc.in, got, tc.plain)
		}
		if got := asciiText(tc.in); got != tc.ascii {
			t.Errorf("asciiText(%q) = %q, want %q", tc.in, got, tc.ascii)
		}
	}
}
