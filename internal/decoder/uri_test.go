package decoder_test

import (
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// source is a URI-reference and dataschema an absolute URI (RFC 3986), for
// rows and messages alike.
func TestURIAttributes(t *testing.T) {
	good := []string{"/orders", "https://shop.example/orders?x=1#f", "urn:shop:users", "mailto:a@b.c", "//host/p", "a/b", "./a:b",
		"", "http://[::1]:8080/x", "http://[v7.fe:1]/", "http://u:p@h:1/", "%C3%A9", "?q", "#f", "tag:x.org,2026:a/b",
		"http://h/a;b=c/d!$&'()*+,=", "http://h:/"}
	bad := []string{"/café", "/a b", "/a|b", "/a{b}", "a:b c", "1a:b", "http://h:x/", "http://[::1/", "http://[fe80::1%25en0]/",
		"/%zz", "/%C", "http://h/<x>", `/a"b`, "/a\\b", "/a^b", "/a`b", "http://exa mple.com/", "/a#b#c", "/a[b]"}
	for _, s := range good {
		d := newDecoder(t, decoder.Config{ServerEncoding: "UTF8"})
		if s == "" {
			continue
		}
		if _, err := decodeTx(d, outboxInsert(typicalRow.with("source", s))); err != nil {
			t.Errorf("source %q refused: %v", s, err)
		}
	}
	for _, s := range bad {
		d := newDecoder(t, decoder.Config{ServerEncoding: "UTF8"})
		_, err := decodeTx(d, outboxInsert(typicalRow.with("source", s)))
		if de := decodeError(t, err); de.Column != "source" || !strings.Contains(de.Reason, "URI-reference") {
			t.Errorf("source %q: %+v", s, de)
		}
		_, err = decodeTx(d, logicalMsg(true, txLSN-8, "outbox", `{"id":"m","type":"t","source":"`+strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`)+`"}`))
		if de := decodeError(t, err); de.Column != "source" || !strings.Contains(de.Reason, "URI-reference") {
			t.Errorf("message source %q: %+v", s, de)
		}
	}
	for s, ok := range map[string]bool{"https://example.com/s.json#/a": true, "urn:schema:1": true, "/relative": false, "schema.json": false, "https://x/{y}": false} {
		d := newDecoder(t, decoder.Config{ServerEncoding: "UTF8"})
		_, err := decodeTx(d, outboxInsert(typicalRow.with("dataschema", s)))
		if ok != (err == nil) {
			t.Errorf("dataschema %q: %v", s, err)
		}
	}
	d := newDecoder(t, decoder.Config{ServerEncoding: "UTF8"})
	_, err := decodeTx(d, outboxInsert(typicalRow.with("headers", `{"dataref":"/a|b"}`)))
	if de := decodeError(t, err); de.Column != "headers" || !strings.Contains(de.Reason, `"dataref"`) {
		t.Errorf("dataref: %+v", de)
	}
}
