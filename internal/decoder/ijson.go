package decoder

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting, as encoding/json does.
const maxJSONDepth = 10000

// jsonChecker checks JSON texts against what the CloudEvents JSON format
// needs: RFC 8259 syntax, UTF-8, and I-JSON (RFC 7493): no duplicate member
// names, no surrogate code points (a lone "\ud800"), no noncharacters.
// encoding/json accepts all three and silently keeps the last duplicate and
// turns the rest into U+FFFD. A jsonChecker reuses its storage; it is not
// safe for concurrent use.
type jsonChecker struct {
	b      []byte
	i      int
	keys   [][]byte // member names of the open objects, innermost last
	syntax bool     // the last problem was a syntax error, not an I-JSON rule
}

// check returns why b is not an I-JSON text, or "". syntax tells whether the
// reason is a plain JSON syntax error.
func (c *jsonChecker) check(b []byte) (reason string, syntax bool) {
	c.b, c.i, c.keys, c.syntax = b, 0, c.keys[:0], false
	c.ws()
	reason = c.value(0)
	if reason == "" {
		c.ws()
		if c.i != len(c.b) {
			reason = c.syntaxErr("data after the JSON value")
		}
	}
	clear(c.keys[:cap(c.keys)]) // do not keep the caller's bytes alive
	c.b = nil
	return reason, c.syntax
}

func (c *jsonChecker) syntaxErr(what string) string {
	c.syntax = true
	return fmt.Sprintf("%s at byte %d", what, c.i)
}

func (c *jsonChecker) ws() {
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (c *jsonChecker) value(depth int) string {
	if depth > maxJSONDepth {
		return c.syntaxErr("nesting too deep")
	}
	if c.i >= len(c.b) {
		return c.syntaxErr("unexpected end")
	}
	switch ch := c.b[c.i]; {
	case ch == '{':
		return c.object(depth)
	case ch == '[':
		c.i++
		c.ws()
		if c.i < len(c.b) && c.b[c.i] == ']' {
			c.i++
			return ""
		}
		for {
			c.ws()
			if r := c.value(depth + 1); r != "" {
				return r
			}
			c.ws()
			if c.i < len(c.b) && c.b[c.i] == ',' {
				c.i++
				continue
			}
			if c.i < len(c.b) && c.b[c.i] == ']' {
				c.i++
				return ""
			}
			return c.syntaxErr("expected ',' or ']'")
		}
	case ch == '"':
		_, r := c.str(false)
		return r
	case ch == '-' || ch >= '0' && ch <= '9':
		return c.number()
	case ch == 't':
		return c.literal("true")
	case ch == 'f':
		return c.literal("false")
	case ch == 'n':
		return c.literal("null")
	}
	return c.syntaxErr(fmt.Sprintf("unexpected %q", c.b[c.i]))
}

func (c *jsonChecker) literal(lit string) string {
	if !bytes.HasPrefix(c.b[c.i:], []byte(lit)) {
		return c.syntaxErr("invalid literal")
	}
	c.i += len(lit)
	return ""
}

func (c *jsonChecker) number() string {
	digits := func() int {
		n := 0
		for c.i < len(c.b) && c.b[c.i] >= '0' && c.b[c.i] <= '9' {
			c.i++
			n++
		}
		return n
	}
	if c.b[c.i] == '-' {
		c.i++
	}
	if c.i < len(c.b) && c.b[c.i] == '0' {
		c.i++
	} else if digits() == 0 {
		return c.syntaxErr("invalid number")
	}
	if c.i < len(c.b) && c.b[c.i] == '.' {
		c.i++
		if digits() == 0 {
			return c.syntaxErr("invalid number")
		}
	}
	if c.i < len(c.b) && (c.b[c.i] == 'e' || c.b[c.i] == 'E') {
		c.i++
		if c.i < len(c.b) && (c.b[c.i] == '+' || c.b[c.i] == '-') {
			c.i++
		}
		if digits() == 0 {
			return c.syntaxErr("invalid number")
		}
	}
	return ""
}

func (c *jsonChecker) object(depth int) string {
	c.i++ // '{'
	c.ws()
	if c.i < len(c.b) && c.b[c.i] == '}' {
		c.i++
		return ""
	}
	first := len(c.keys)
	var seen map[string]struct{} // for objects with many members
	defer func() { c.keys = c.keys[:first] }()
	for {
		c.ws()
		if c.i >= len(c.b) || c.b[c.i] != '"' {
			return c.syntaxErr("expected a member name")
		}
		at := c.i
		key, r := c.str(true)
		if r != "" {
			return r
		}
		if seen == nil && len(c.keys)-first >= 32 {
			seen = make(map[string]struct{}, 64)
			for _, k := range c.keys[first:] {
				seen[string(k)] = struct{}{}
			}
		}
		dup := false
		if seen != nil {
			_, dup = seen[string(key)]
			seen[string(key)] = struct{}{}
		} else {
			for _, k := range c.keys[first:] {
				if bytes.Equal(k, key) {
					dup = true
					break
				}
			}
		}
		if dup {
			return fmt.Sprintf("duplicate member name %q at byte %d (I-JSON, RFC 7493, forbids duplicates; encoding/json and most consumers would keep only one)", key, at)
		}
		c.keys = append(c.keys, key)
		c.ws()
		if c.i >= len(c.b) || c.b[c.i] != ':' {
			return c.syntaxErr("expected ':'")
		}
		c.i++
		c.ws()
		if r := c.value(depth + 1); r != "" {
			return r
		}
		c.ws()
		if c.i < len(c.b) && c.b[c.i] == ',' {
			c.i++
			continue
		}
		if c.i < len(c.b) && c.b[c.i] == '}' {
			c.i++
			return ""
		}
		return c.syntaxErr("expected ',' or '}'")
	}
}

// str reads a string at c.i (the opening quote). With want it returns the
// decoded value when the string has escapes, or the raw bytes when not.
func (c *jsonChecker) str(want bool) ([]byte, string) {
	c.i++
	start := c.i
	var buf []byte // the decoded value, only once an escape was seen
	for c.i < len(c.b) {
		ch := c.b[c.i]
		switch {
		case ch == '"':
			v := c.b[start:c.i]
			c.i++
			if buf != nil {
				return buf, ""
			}
			return v, ""
		case ch == '\\':
			if want && buf == nil {
				buf = append([]byte(nil), c.b[start:c.i]...)
			}
			if c.i+1 >= len(c.b) {
				return nil, c.syntaxErr("unterminated escape")
			}
			switch e := c.b[c.i+1]; e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				if want {
					buf = append(buf, unescape[e])
				}
				c.i += 2
			case 'u':
				at := c.i
				r, ok := c.hex4(c.i + 2)
				if !ok {
					return nil, c.syntaxErr(`invalid \u escape`)
				}
				c.i += 6
				if r >= 0xd800 && r < 0xdc00 {
					lo, ok := rune(0), false
					if c.i+1 < len(c.b) && c.b[c.i] == '\\' && c.b[c.i+1] == 'u' {
						lo, ok = c.hex4(c.i + 2)
					}
					if !ok || lo < 0xdc00 || lo > 0xdfff {
						return nil, fmt.Sprintf(`lone surrogate \u%04x at byte %d (I-JSON, RFC 7493, forbids surrogates that do not form a pair; encoding/json would turn it into U+FFFD)`, r, at)
					}
					c.i += 6
					r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
				} else if r >= 0xdc00 && r <= 0xdfff {
					return nil, fmt.Sprintf(`lone surrogate \u%04x at byte %d (I-JSON, RFC 7493, forbids surrogates that do not form a pair; encoding/json would turn it into U+FFFD)`, r, at)
				}
				if isNoncharacter(r) {
					return nil, noncharReason(r, at)
				}
				if want {
					buf = utf8.AppendRune(buf, r)
				}
			default:
				return nil, c.syntaxErr("invalid escape")
			}
		case ch < 0x20:
			return nil, c.syntaxErr("control character in a string")
		case ch < utf8.RuneSelf:
			if buf != nil {
				buf = append(buf, ch)
			}
			c.i++
		default:
			r, n := utf8.DecodeRune(c.b[c.i:])
			if r == utf8.RuneError && n == 1 {
				return nil, fmt.Sprintf("invalid UTF-8 (byte 0x%02X) at byte %d", c.b[c.i], c.i)
			}
			if isNoncharacter(r) {
				return nil, noncharReason(r, c.i)
			}
			if buf != nil {
				buf = append(buf, c.b[c.i:c.i+n]...)
			}
			c.i += n
		}
	}
	return nil, c.syntaxErr("unterminated string")
}

var unescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

func (c *jsonChecker) hex4(at int) (rune, bool) {
	if at+4 > len(c.b) {
		return 0, false
	}
	var r rune
	for _, h := range c.b[at : at+4] {
		switch {
		case h >= '0' && h <= '9':
			r = r<<4 | rune(h-'0')
		case h >= 'a' && h <= 'f':
			r = r<<4 | rune(h-'a'+10)
		case h >= 'A' && h <= 'F':
			r = r<<4 | rune(h-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// isNoncharacter reports whether r is one of Unicode's 66 noncharacters
// (U+FDD0..U+FDEF and the last two code points of every plane).
func isNoncharacter(r rune) bool {
	return r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe && r <= utf8.MaxRune
}

func noncharReason(r rune, at int) string {
	return fmt.Sprintf("contains the noncharacter U+%04X at byte %d, which I-JSON (RFC 7493) forbids in the CloudEvents JSON format", r, at)
}

// textProblem returns why text b cannot be carried in the CloudEvents JSON
// format, or "": with utf8Check, bytes that are not UTF-8; always, a
// noncharacter. ASCII text costs one pass of 8-byte words.
func textProblem(b []byte, utf8Check bool) string {
	i := firstNonASCII(b)
	for i < len(b) {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			if utf8Check {
				return fmt.Sprintf("is not valid UTF-8: byte 0x%02X at offset %d", b[i], i)
			}
		} else if isNoncharacter(r) {
			return noncharReason(r, i)
		}
		i += n
	}
	return ""
}
