package decoder

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// maxInterned bounds the intern table; it is cleared when full.
const maxInterned = 4096

// intern returns b as a string, sharing one allocation per distinct value
// for the columns that repeat across rows (type, source, aggregate type,
// content type).
func (d *Decoder) intern(b []byte) string {
	if s, ok := d.interned[string(b)]; ok {
		return s
	}
	if len(d.interned) >= maxInterned {
		clear(d.interned)
	}
	s := string(b)
	d.interned[s] = s
	return s
}

// parseTimestamp parses PostgreSQL's ISO output of timestamptz and timestamp
// ("2026-11-27 08:21:12.123456+00", "+05:30", no zone for timestamp) without
// allocating. ok is false for anything else (BC dates, infinity, other
// DateStyles); the caller then falls back to pgtype.
func parseTimestamp(b []byte) (t time.Time, ok bool) {
	// YYYY-MM-DD HH:MM:SS
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || b[10] != ' ' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	i := 19
	nsec := 0
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		digits := i - start
		if digits == 0 || digits > 9 {
			return time.Time{}, false
		}
		f, _ := num(b[start:i])
		for k := digits; k < 9; k++ {
			f *= 10
		}
		nsec = f
	}
	offset := 0
	if i < len(b) {
		sign := 1
		switch b[i] {
		case '+':
		case '-':
			sign = -1
		default:
			return time.Time{}, false
		}
		i++
		parts := [3]int{}
		for k := 0; k < 3 && i < len(b); k++ {
			if k > 0 {
				if b[i] != ':' {
					return time.Time{}, false
				}
				i++
			}
			if i+2 > len(b) {
				return time.Time{}, false
			}
			v, ok := num(b[i : i+2])
			if !ok {
				return time.Time{}, false
			}
			parts[k] = v
			i += 2
		}
		if i != len(b) {
			return time.Time{}, false
		}
		offset = sign * (parts[0]*3600 + parts[1]*60 + parts[2])
	}
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// parseHeaders reads a flat JSON object of extension attributes (string,
// number or boolean values; null values are skipped) into e.Extensions. It
// returns a reason on anything else.
func parseHeaders(b []byte, e *event.Event) string {
	p := jsonScanner{b: b}
	p.ws()
	if !p.eat('{') {
		return "must be a JSON object of extension attributes"
	}
	p.ws()
	if p.eat('}') {
		return p.end()
	}
	for {
		p.ws()
		name, ok := p.str()
		if !ok {
			return "must be a JSON object of extension attributes: bad key at byte " + fmt.Sprint(p.i)
		}
		p.ws()
		if !p.eat(':') {
			return "must be a JSON object of extension attributes: missing ':' at byte " + fmt.Sprint(p.i)
		}
		p.ws()
		if reason := validExtensionName(name); reason != "" {
			return reason
		}
		if p.i >= len(p.b) {
			return "must be a JSON object of extension attributes: truncated"
		}
		switch c := p.b[p.i]; {
		case c == '"':
			v, ok := p.str()
			if !ok {
				return fmt.Sprintf("extension %q: bad string", name)
			}
			if reason := checkExtensionValue(name, v); reason != "" {
				return reason
			}
			e.Extensions = append(e.Extensions, event.Extension{Name: name, Value: v})
		case c == '{' || c == '[':
			return fmt.Sprintf("extension %q must be a string, number or boolean, not %s", name, kindOf(c))
		default:
			start := p.i
			for p.i < len(p.b) && p.b[p.i] != ',' && p.b[p.i] != '}' && p.b[p.i] != ' ' && p.b[p.i] != '\t' && p.b[p.i] != '\n' && p.b[p.i] != '\r' {
				p.i++
			}
			lit := p.b[start:p.i]
			if !json.Valid(lit) {
				return fmt.Sprintf("extension %q: %q is not a JSON value", name, lit)
			}
			if string(lit) != "null" {
				e.Extensions = append(e.Extensions, event.Extension{Name: name, Value: string(lit)})
			}
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return p.end()
		}
		return "must be a JSON object of extension attributes: expected ',' or '}' at byte " + fmt.Sprint(p.i)
	}
}

type jsonScanner struct {
	b []byte
	i int
}

func (p *jsonScanner) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *jsonScanner) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonScanner) end() string {
	p.ws()
	if p.i != len(p.b) {
		return "must be a JSON object of extension attributes: trailing data"
	}
	return ""
}

// str reads a JSON string; escapes go through encoding/json.
func (p *jsonScanner) str() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	start := p.i
	escaped := false
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '\\':
			escaped = true
			p.i += 2
			continue
		case c == '"':
			raw := p.b[start:p.i]
			p.i++
			if !escaped {
				if !utf8.Valid(raw) {
					return "", false
				}
				return string(raw), true
			}
			var s string
			if err := json.Unmarshal(p.b[start-1:p.i], &s); err != nil {
				return "", false
			}
			return s, true
		case c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}
