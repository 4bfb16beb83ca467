package decoder_test

import (
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// The I-JSON rules, for every column type the decoder accepts and for
// messages: refused by name, or (bytea) carried as data_base64.
func TestIJSON(t *testing.T) {
	cases := []struct {
		name, data, headers, reason string // reason "" means accepted
	}{
		{"pair", `{"a":"\ud83d\ude00"}`, "", ""},
		{"escaped key that differs", `{"a":1,"\u0062":2}`, "", ""},
		{"same key in sibling objects", `[{"a":1},{"a":2}]`, "", ""},
		{"same key at two levels", `{"a":{"a":1}}`, "", ""},
		{"40 members", `{` + members(40, false) + `}`, "", ""},
		{"U+0000 escape", `{"a":"\u0000"}`, "", ""},
		{"duplicate", `{"a":1,"a":2}`, "", "duplicate member name \"a\""},
		{"nested duplicate", `{"x":[{"b":1,"b":1}]}`, "", "duplicate member name \"b\""},
		{"escaped duplicate", `{"a":1,"\u0061":2}`, "", "duplicate member name \"a\""},
		{"duplicate among 40", `{` + members(40, true) + `}`, "", "duplicate member name \"k0\""},
		{"lone high", `{"a":"\ud800"}`, "", "lone surrogate \\ud800"},
		{"lone high then text", `["\ud800x"]`, "", "lone surrogate"},
		{"high high", `["\ud800\ud800"]`, "", "lone surrogate"},
		{"lone low", `["\udc00"]`, "", "lone surrogate \\udc00"},
		{"noncharacter escape", `["\uffff"]`, "", "noncharacter U+FFFF"},
		{"noncharacter FDD0", "[\"\ufdd0\"]", "", "noncharacter U+FDD0"},
		{"plane 1 noncharacter", `["\ud83f\udffe"]`, "", "noncharacter U+1FFFE"},
		{"header duplicate", `{}`, `{"t":"a","t":"b"}`, "duplicate member name \"t\""},
		{"header lone surrogate", `{}`, `{"t":"\udbff"}`, "lone surrogate"},
		{"header noncharacter", `{}`, `{"t":"\ufffe"}`, "noncharacter"},
	}
	for _, c := range cases {
		for _, typ := range []uint32{oidJSON, oidText, oidBytea, oidJSONB} {
			t.Run(c.name+"/"+typeName(typ), func(t *testing.T) {
				if typ == oidJSONB && (strings.Contains(c.data+c.headers, `\u`) || strings.Contains(c.reason, "duplicate")) {
					t.Skip("jsonb is normalized by the server: no duplicates, escapes refused or converted")
				}
				if typ == oidBytea && c.headers != "" {
					t.Skip("headers stay jsonb here")
				}
				d := newDecoder(t, decoder.Config{ServerEncoding: "UTF8"})
				cols := append([]relCol(nil), outboxCols...)
				for i := range cols {
					if cols[i].name == "data" {
						cols[i].oid = typ
					}
					if cols[i].name == "headers" && typ != oidBytea {
						cols[i].oid = typ
					}
				}
				row := typicalRow.with("data", c.data, "headers", c.headers)
				if c.headers == "" {
					row = row.without("headers")
				}
				if typ == oidBytea {
					row["data"] = `\x` + hexOf(c.data)
				}
				h := &recorder{}
				err := feed(d, h, relationMsg(outboxRelID, "public", "outbox", cols), beginMsg(txLSN, txTime, 1),
					insertMsg(outboxRelID, row.vals(outboxCols)...), commitMsg(txLSN, txEnd, txTime))
				if typ == oidBytea && c.headers == "" && c.reason != "" {
					// Bytes that are not I-JSON travel as data_base64.
					if err != nil || len(h.events) != 1 || h.events[0].DataKind != 3 || string(h.events[0].Data) != c.data {
						t.Fatalf("bytea: err %v, events %+v; want the bytes as binary data", err, h.events)
					}
					return
				}
				if c.reason == "" {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				de := decodeError(t, err)
				if !strings.Contains(de.Reason, c.reason) || (de.Column != "data" && de.Column != "headers") {
					t.Fatalf("error %q (column %q), want %q", de.Reason, de.Column, c.reason)
				}
			})
		}
		if c.headers != "" {
			continue
		}
		t.Run(c.name+"/message", func(t *testing.T) {
			d := newDecoder(t, decoder.Config{ServerEncoding: "UTF8"})
			_, err := decodeTx(d, logicalMsg(true, txLSN-8, "outbox", `{"id":"m1","type":"t","source":"/s","data":`+c.data+`}`))
			if c.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if de := decodeError(t, err); !strings.Contains(de.Reason, c.reason) || de.RowID != "m1" {
				t.Fatalf("error %+v, want %q and id m1", de, c.reason)
			}
		})
	}
}

func members(n int, dup bool) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		k := i
		if dup && i == n-1 {
			k = 0
		}
		b.WriteString(`"k` + itoa(k) + `":1`)
	}
	return b.String()
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func typeName(oid uint32) string {
	switch oid {
	case oidJSON:
		return "json"
	case oidJSONB:
		return "jsonb"
	case oidBytea:
		return "bytea"
	}
	return "text"
}

// Noncharacters in any text column are refused: the JSON format carries
// every attribute as a JSON string.
func TestNoncharacterInAttribute(t *testing.T) {
	d := newDecoder(t, decoder.Config{ServerEncoding: "UTF8"})
	_, err := decodeTx(d, outboxInsert(typicalRow.with("subject", "a\uffffb")))
	if de := decodeError(t, err); de.Column != "subject" || !strings.Contains(de.Reason, "noncharacter U+FFFF") {
		t.Fatalf("error %+v", de)
	}
}

// A message whose top-level attribute is duplicated is refused even though
// encoding/json would keep the last one; the id is still named.
func TestMessageDuplicateAttribute(t *testing.T) {
	d := newDecoder(t, decoder.Config{ServerEncoding: "UTF8"})
	_, err := decodeTx(d, logicalMsg(true, txLSN-8, "outbox", `{"id":"m1","type":"a","type":"b","source":"/s"}`))
	if de := decodeError(t, err); de.RowID != "m1" || !strings.Contains(de.Reason, `duplicate member name "type"`) {
		t.Fatalf("error %+v", de)
	}
}
