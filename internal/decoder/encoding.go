package decoder

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	xenc "golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// The replication connection reads every byte as the server stored it
// (client_encoding SQL_ASCII: PostgreSQL then neither converts nor checks),
// because with client_encoding UTF8 a walsender converts tuple text but not
// logical-message content, and stops the whole stream, on every reconnect,
// at a value it cannot convert (SQL_ASCII bytes that are not UTF-8, a
// WIN1252 byte with no Unicode character). Converting here instead treats
// tuple text and messages alike and turns such a value into an invalid row
// under outbox.on_invalid, with its table, row id, LSN and column.

// encKind is how text in a server encoding becomes UTF-8.
type encKind uint8

const (
	encUTF8      encKind = iota // already UTF-8 and checked by the server
	encUnchecked                // bytes the server never checked: must be UTF-8
	encSingle                   // single-byte: a table of 256 runes
	encMulti                    // multi-byte: a golang.org/x/text decoder
)

// encoding converts text from one PostgreSQL server encoding to UTF-8.
type encoding struct {
	name  string
	kind  encKind
	table *[256]rune // encSingle: utf8.RuneError for a byte with no character
	multi xenc.Encoding
	// valid, for encMulti, reports whether b is well formed in the server
	// encoding where the x/text decoder is more lenient (EUC_CN read as GBK).
	valid func(b []byte) bool
}

// single builds the table of a single-byte encoding. windows marks the
// Windows code pages, whose x/text tables (from WHATWG) fill the bytes that
// Microsoft's tables and PostgreSQL leave undefined with C1 controls.
func single(name string, cm *charmap.Charmap, windows bool) *encoding {
	var t [256]rune
	for i := range t {
		r := cm.DecodeByte(byte(i))
		if windows && r >= 0x80 && r <= 0x9f {
			r = utf8.RuneError
		}
		t[i] = r
	}
	return &encoding{name: name, kind: encSingle, table: &t}
}

// encodings are the server encodings outbox-cdc reads, by the name
// PostgreSQL reports in server_encoding. PostgreSQL's other server
// encodings (EUC_JIS_2004, EUC_TW, MULE_INTERNAL) are refused by name.
var encodings = func() map[string]*encoding {
	m := map[string]*encoding{
		"UTF8":      {name: "UTF8", kind: encUTF8},
		"SQL_ASCII": {name: "SQL_ASCII", kind: encUnchecked},
		"EUC_JP":    {name: "EUC_JP", kind: encMulti, multi: japanese.EUCJP},
		"EUC_KR":    {name: "EUC_KR", kind: encMulti, multi: korean.EUCKR},
		"EUC_CN":    {name: "EUC_CN", kind: encMulti, multi: simplifiedchinese.GBK, valid: validEUCCN},
	}
	for name, cm := range map[string]*charmap.Charmap{
		"LATIN1": charmap.ISO8859_1, "LATIN2": charmap.ISO8859_2, "LATIN3": charmap.ISO8859_3,
		"LATIN4": charmap.ISO8859_4, "LATIN5": charmap.ISO8859_9, "LATIN6": charmap.ISO8859_10,
		"LATIN7": charmap.ISO8859_13, "LATIN8": charmap.ISO8859_14, "LATIN9": charmap.ISO8859_15,
		"LATIN10":    charmap.ISO8859_16,
		"ISO_8859_5": charmap.ISO8859_5, "ISO_8859_6": charmap.ISO8859_6,
		"ISO_8859_7": charmap.ISO8859_7, "ISO_8859_8": charmap.ISO8859_8,
		"KOI8R": charmap.KOI8R, "KOI8U": charmap.KOI8U,
	} {
		m[name] = single(name, cm, false)
	}
	for name, cm := range map[string]*charmap.Charmap{
		"WIN866": charmap.CodePage866, "WIN874": charmap.Windows874,
		"WIN1250": charmap.Windows1250, "WIN1251": charmap.Windows1251, "WIN1252": charmap.Windows1252,
		"WIN1253": charmap.Windows1253, "WIN1254": charmap.Windows1254, "WIN1255": charmap.Windows1255,
		"WIN1256": charmap.Windows1256, "WIN1257": charmap.Windows1257, "WIN1258": charmap.Windows1258,
	} {
		m[name] = single(name, cm, name != "WIN866")
	}
	return m
}()

// unsupportedEncodings are PostgreSQL server encodings outbox-cdc refuses.
var unsupportedEncodings = []string{"EUC_JIS_2004", "EUC_TW", "MULE_INTERNAL"}

// SupportedEncodings returns the PostgreSQL server encodings outbox-cdc
// converts to UTF-8, sorted.
func SupportedEncodings() []string {
	names := make([]string, 0, len(encodings))
	for n := range encodings {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// CheckEncoding returns nil when outbox-cdc can read a database whose
// server_encoding is name, and otherwise an error naming it and the
// encodings it supports.
func CheckEncoding(name string) error {
	_, err := lookupEncoding(name)
	return err
}

func lookupEncoding(name string) (*encoding, error) {
	if e, ok := encodings[strings.ToUpper(name)]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("the database's server_encoding is %s, which outbox-cdc cannot convert to UTF-8 (supported: %s; not supported: %s): create the database with ENCODING 'UTF8' (recommended) or one of the supported encodings",
		name, strings.Join(SupportedEncodings(), ", "), strings.Join(unsupportedEncodings, ", "))
}

// toUTF8 converts src to UTF-8. When it must convert it appends the result
// to dst and returns it with converted true; a value that is ASCII or
// already UTF-8 is not copied (converted false, src is the result). ok is
// false when src is not valid text in the encoding.
func (e *encoding) toUTF8(dst, src []byte) (out []byte, converted, ok bool) {
	switch e.kind {
	case encUTF8:
		return dst, false, true
	case encUnchecked:
		return dst, false, utf8.Valid(src)
	}
	i := firstNonASCII(src)
	if i == len(src) {
		return dst, false, true
	}
	if e.kind == encSingle {
		dst = append(dst, src[:i]...)
		for _, c := range src[i:] {
			if c < utf8.RuneSelf {
				dst = append(dst, c)
				continue
			}
			r := e.table[c]
			if r == utf8.RuneError {
				return dst, false, false
			}
			dst = utf8.AppendRune(dst, r)
		}
		return dst, true, true
	}
	if e.valid != nil && !e.valid(src) {
		return dst, false, false
	}
	b, err := e.multi.NewDecoder().Bytes(src)
	if err != nil || bytes.Contains(b, replacement) {
		// U+FFFD has no code in any of these encodings: the decoder put it
		// where a byte sequence was not valid.
		return dst, false, false
	}
	return append(dst, b...), true, true
}

var replacement = []byte(string(utf8.RuneError))

// convert returns src as UTF-8 in a new or shared slice, and whether src
// was valid in the encoding.
func (e *encoding) convert(src []byte) ([]byte, bool) {
	out, converted, ok := e.toUTF8(nil, src)
	if converted {
		return out, ok
	}
	return src, ok
}

// firstNonASCII returns the index of the first byte >= 0x80, or len(b).
func firstNonASCII(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if (uint64(b[i])|uint64(b[i+1])|uint64(b[i+2])|uint64(b[i+3])|
			uint64(b[i+4])|uint64(b[i+5])|uint64(b[i+6])|uint64(b[i+7]))&0x80 != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return i
		}
	}
	return i
}

// validEUCCN reports whether b is well formed EUC_CN as PostgreSQL checks it:
// ASCII, or two bytes that both have the high bit set.
func validEUCCN(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] < 0x80 {
			continue
		}
		if b[i] < 0xa1 || b[i] == 0xff || i+1 >= len(b) || b[i+1] < 0xa1 || b[i+1] == 0xff {
			return false
		}
		i++
	}
	return true
}

// rawText returns b for an invalid row's Raw map: as text when it is UTF-8,
// otherwise as PostgreSQL's bytea hex form ("\x636166e9"), so that the
// dead-letter store keeps the exact bytes.
func rawText(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	const hexDigits = "0123456789abcdef"
	out := make([]byte, 2, 2+2*len(b))
	out[0], out[1] = '\\', 'x'
	for _, c := range b {
		out = append(out, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return string(out)
}

// rowText makes the text columns of a row that the event is built from
// valid UTF-8: converted from the server encoding (into d.conv, cols then
// point there) and checked for what the CloudEvents JSON format cannot carry.
// A UTF8 database costs one 8-byte-word scan per column (for noncharacters).
func (d *Decoder) rowText(rel *relation, cols []column) *Error {
	if rel.err != nil || len(cols) != len(rel.cols) {
		return nil // row reports these
	}
	kind := d.enc.kind
	if kind == encUTF8 || kind == encUnchecked {
		for f := range rel.idx {
			i := rel.idx[f]
			if i < 0 || cols[i].kind != 't' {
				continue
			}
			if reason := textProblem(cols[i].data, kind == encUnchecked); reason != "" {
				if kind == encUnchecked && strings.HasPrefix(reason, "is not valid UTF-8") {
					reason += d.uncheckedNote()
				}
				return d.rowError(rel, cols, f, reason)
			}
		}
		return nil
	}
	// Convert every text column (so that an invalid row's Raw is UTF-8
	// too), and refuse the row for the first mapped column that is not
	// valid in the server encoding.
	d.conv = d.conv[:0]
	d.spans = append(d.spans[:0], make([]span, len(cols))...)
	bad := -1
	for i := range cols {
		if cols[i].kind != 't' {
			continue
		}
		from := len(d.conv)
		out, converted, ok := d.enc.toUTF8(d.conv, cols[i].data)
		switch {
		case !ok:
			if bad < 0 && rel.mapped(i) {
				bad = i
			}
		case converted:
			d.conv = out
			d.spans[i] = span{from, len(out)}
		}
	}
	// d.conv may have moved while it grew: point the columns at it last.
	for i, sp := range d.spans {
		if sp.to > 0 {
			cols[i].data = d.conv[sp.from:sp.to:sp.to]
		}
	}
	if bad >= 0 {
		f := rel.field(bad)
		err := d.rowError(rel, cols, f, fmt.Sprintf("is not valid %s text: it holds a byte sequence with no Unicode character (the exact bytes are kept in the raw row as \\x hex)", d.enc.name))
		err.Column = rel.cols[bad].name
		return err
	}
	return nil
}

func (d *Decoder) uncheckedNote() string {
	if d.enc.name == "SQL_ASCII" {
		return " (the database's server_encoding is SQL_ASCII, which stores bytes unchecked; outbox-cdc reads them as UTF-8)"
	}
	return " (the server encoding is not known to the decoder, so text must be UTF-8)"
}

// mapped reports whether column i feeds an event field.
func (rel *relation) mapped(i int) bool { return rel.field(i) >= 0 }

// field returns the event field column i feeds, or -1.
func (rel *relation) field(i int) int {
	for f, c := range rel.idx {
		if c == i {
			return f
		}
	}
	return -1
}

// name converts a relation or column name from the server encoding; a name
// that is not valid there comes back in \x hex and ok false.
func (d *Decoder) name(b []byte) (string, bool) {
	out, ok := d.enc.convert(b)
	if !ok {
		return rawText(b), false
	}
	return string(out), true
}

// span is a converted column's place in Decoder.conv.
type span struct{ from, to int }
