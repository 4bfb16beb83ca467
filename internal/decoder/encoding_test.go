package decoder_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// Expected UTF-8 for bytes in each encoding, pinned from PostgreSQL 15's own
// conversion (SELECT convert_from('\x..'::bytea, '<encoding>')).
func TestServerEncodingConversion(t *testing.T) {
	for _, c := range []struct{ enc, in, want string }{
		{"LATIN1", "caf\xe9 \xff \xdf \xd7", "café ÿ ß ×"},
		{"LATIN9", "\xa4", "€"},
		{"WIN1252", "caf\xe9 \x80 \x93q\x94 \x8c", "café € “q” Œ"},
		{"WIN1251", "\xcf\xf0\xe8\xe2\xe5\xf2", "Привет"},
		{"KOI8R", "\xf0\xd2\xc9\xd7\xc5\xd4", "Привет"},
		{"ISO_8859_7", "\xe1\xe2\xe3", "αβγ"},
		{"EUC_JP", "caf\x8f\xab\xb1 \xc6\xfc\xcb\xdc \x8e\xb6", "café 日本 ｶ"},
		{"EUC_KR", "\xb0\xa1", "가"},
		{"EUC_CN", "\xb0\xa1", "啊"},
		{"SQL_ASCII", "café", "café"},
		{"UTF8", "café", "café"},
	} {
		t.Run(c.enc, func(t *testing.T) {
			d := newDecoder(t, decoder.Config{ServerEncoding: c.enc})
			row := typicalRow.with("subject", c.in, "aggregate_id", c.in, "data", `{"n":"`+c.in+`"}`)
			h, err := decodeTx(d, outboxInsert(row))
			if err != nil {
				t.Fatal(err)
			}
			e := h.events[0]
			if e.Subject != c.want || e.AggregateID != c.want || string(e.Data) != `{"n":"`+c.want+`"}` {
				t.Fatalf("subject %q, aggregate id %q, data %s; want %q", e.Subject, e.AggregateID, e.Data, c.want)
			}
			msg := `{"id":"m-` + c.in + `","type":"t","source":"/s","data":{"n":"` + c.in + `"}}`
			h, err = decodeTx(d, logicalMsg(true, txLSN-8, "outbox", msg))
			if err != nil {
				t.Fatal(err)
			}
			if e := h.events[0]; e.ID != "m-"+c.want || string(e.Data) != `{"n":"`+c.want+`"}` {
				t.Fatalf("message id %q, data %s; want %q", e.ID, e.Data, c.want)
			}
		})
	}
}

// Bytes that are not text in the server encoding are an invalid row or
// message, named, with the exact bytes kept in Raw.
func TestServerEncodingInvalidBytes(t *testing.T) {
	for _, c := range []struct{ enc, in, reason string }{
		{"SQL_ASCII", "caf\xe9", "SQL_ASCII"},
		{"", "caf\xe9", "not valid UTF-8"},
		{"WIN1252", "\x81", "not valid WIN1252"},
		{"WIN1253", "\xaa", "not valid WIN1253"},
		{"LATIN3", "\xa5", "not valid LATIN3"},
		{"EUC_JP", "\xe9\xff", "not valid EUC_JP"},
		{"EUC_CN", "\x80", "not valid EUC_CN"},
		{"EUC_KR", "\xb0", "not valid EUC_KR"},
	} {
		t.Run(c.enc, func(t *testing.T) {
			d := newDecoder(t, decoder.Config{ServerEncoding: c.enc})
			_, err := decodeTx(d, outboxInsert(typicalRow.with("subject", c.in)))
			de := decodeError(t, err)
			if de.Column != "subject" || !strings.Contains(de.Reason, c.reason) || de.RowID != typicalRow["id"] {
				t.Fatalf("error %+v, want column subject, row id and %q", de, c.reason)
			}
			want := `\x` + strings.TrimPrefix(strings.ToLower(hexOf(c.in)), "")
			if got := *de.Raw["subject"]; got != want {
				t.Fatalf("Raw subject %q, want %q", got, want)
			}
			for name, v := range de.Raw {
				if v != nil && !utf8.ValidString(*v) {
					t.Fatalf("Raw %s is not UTF-8: %q", name, *v)
				}
			}
			_, err = decodeTx(d, logicalMsg(true, txLSN-8, "outbox", `{"id":"m1","type":"t","source":"/s","subject":"`+c.in+`"}`))
			de = decodeError(t, err)
			if !strings.Contains(de.Reason, "content is") || de.RowID != "m1" || !utf8.ValidString(*de.Raw["content"]) {
				t.Fatalf("message error %+v", de)
			}
		})
	}
	// In a UTF8 database only the bytea variant of pg_logical_emit_message
	// can carry invalid UTF-8; tuple text is checked by the server.
	d := newDecoder(t, decoder.Config{ServerEncoding: "UTF8"})
	_, err := decodeTx(d, logicalMsg(true, txLSN-8, "outbox", `{"id":"m1","type":"t","source":"/s","data":"caf`+"\xe9"+`"}`))
	if de := decodeError(t, err); !strings.Contains(de.Reason, "invalid UTF-8") || *de.Raw["content"] != `\x`+hexOf(`{"id":"m1","type":"t","source":"/s","data":"caf`+"\xe9"+`"}`) {
		t.Fatalf("error %+v, want invalid UTF-8 and the content as hex", de)
	}
}

func hexOf(s string) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(digits[s[i]>>4])
		b.WriteByte(digits[s[i]&0xf])
	}
	return b.String()
}

// Relation and column names come in the server encoding too.
func TestServerEncodingNames(t *testing.T) {
	d := newDecoder(t, decoder.Config{ServerEncoding: "LATIN1", Tables: []decoder.Table{{Name: "public.boîte", Columns: decoder.Columns{Subject: "résumé"}}}})
	cols := append([]relCol(nil), outboxCols...)
	cols[3].name = "r\xe9sum\xe9"
	row := typicalRow.with("subject", "Zo\xeb")
	h := &recorder{}
	err := feed(d, h, relationMsg(outboxRelID, "public", "bo\xeete", cols), beginMsg(txLSN, txTime, 1), insertMsg(outboxRelID, row.vals(outboxCols)...), commitMsg(txLSN, txEnd, txTime))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.events) != 1 || h.events[0].Subject != "Zoë" || h.events[0].Table != "public.boîte" {
		t.Fatalf("events %+v, want one from public.boîte with subject Zoë", h.events)
	}
}

func TestUnsupportedServerEncoding(t *testing.T) {
	for _, enc := range []string{"MULE_INTERNAL", "EUC_TW", "EUC_JIS_2004", "SJIS"} {
		err := decoder.CheckEncoding(enc)
		if err == nil || !strings.Contains(err.Error(), enc) || !strings.Contains(err.Error(), "LATIN1") {
			t.Errorf("CheckEncoding(%s) = %v, want an error naming it and the supported list", enc, err)
		}
		if _, err := decoder.New(decoder.Config{ServerEncoding: enc}, nil); err == nil {
			t.Errorf("New with %s: no error", enc)
		}
	}
	// Every server encoding PostgreSQL allows is either supported or named.
	for _, enc := range []string{"EUC_CN", "EUC_JP", "EUC_JIS_2004", "EUC_KR", "EUC_TW", "ISO_8859_5", "ISO_8859_6", "ISO_8859_7",
		"ISO_8859_8", "KOI8R", "KOI8U", "LATIN1", "LATIN2", "LATIN3", "LATIN4", "LATIN5", "LATIN6", "LATIN7", "LATIN8", "LATIN9",
		"LATIN10", "MULE_INTERNAL", "SQL_ASCII", "UTF8", "WIN866", "WIN874", "WIN1250", "WIN1251", "WIN1252", "WIN1253",
		"WIN1254", "WIN1255", "WIN1256", "WIN1257", "WIN1258"} {
		err := decoder.CheckEncoding(enc)
		if unsupported := enc == "EUC_JIS_2004" || enc == "EUC_TW" || enc == "MULE_INTERNAL"; unsupported != (err != nil) {
			t.Errorf("CheckEncoding(%s) = %v", enc, err)
		}
	}
}
