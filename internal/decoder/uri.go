package decoder

import (
	"fmt"
	"net/netip"
	"strings"
)

// CloudEvents types source as a URI-reference and dataschema as a URI (RFC
// 3986). net/url.Parse accepts much that RFC 3986 does not (spaces inside a
// path, "|", "{", "<", non-ASCII letters), so these checks follow the RFC's
// grammar instead. They refuse rather than percent-encode: source and id
// together identify an event, and rewriting either would make a new event.

// uriChar classifies ASCII bytes by RFC 3986 2.2 and 2.3.
const (
	cUnreserved = 1 << iota // ALPHA DIGIT - . _ ~
	cSubDelim               // ! $ & ' ( ) * + , ; =
	cScheme                 // ALPHA DIGIT + - .
)

var uriChar = func() (t [128]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = cUnreserved | cScheme
		t[c-'a'+'A'] = cUnreserved | cScheme
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = cUnreserved | cScheme
	}
	t['-'] = cUnreserved | cScheme
	t['.'] = cUnreserved | cScheme
	t['_'] = cUnreserved
	t['~'] = cUnreserved
	t['+'] |= cSubDelim | cScheme
	for _, c := range "!$&'()*,;=" {
		t[c] |= cSubDelim
	}
	return t
}()

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// checkChars reports the first byte of s that is neither pct-encoded nor
// unreserved, a sub-delim or one of extra.
func checkChars(s, extra string, base int) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return fmt.Sprintf("%q at offset %d is not a percent-encoding %%XX", s[i:min(i+3, len(s))], base+i)
			}
			i += 2
		case c < 128 && uriChar[c]&(cUnreserved|cSubDelim) != 0:
		case c < 128 && strings.IndexByte(extra, c) >= 0:
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			return fmt.Sprintf("white space %q at offset %d (percent-encode it)", c, base+i)
		case c >= 128:
			return fmt.Sprintf("non-ASCII byte 0x%02X at offset %d (percent-encode it as UTF-8, e.g. é as %%C3%%A9)", c, base+i)
		default:
			return fmt.Sprintf("%q at offset %d is not allowed in a URI (percent-encode it)", c, base+i)
		}
	}
	return ""
}

// parseURIRef checks s against RFC 3986's URI-reference. It returns whether
// s has a scheme (is a URI, not a relative reference) and why it is not a
// URI-reference ("" when it is).
func parseURIRef(s string) (absolute bool, reason string) {
	rest, at := s, 0 // at: where rest starts in s
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		if r := checkChars(rest[i+1:], ":@/?", i+1); r != "" {
			return false, "fragment: " + r
		}
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		if r := checkChars(rest[i+1:], ":@/?", i+1); r != "" {
			return false, "query: " + r
		}
		rest = rest[:i]
	}
	// A colon before any '/' ends a scheme.
	if i := strings.IndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[:i], "/") {
		scheme := rest[:i]
		if scheme == "" || !(scheme[0] >= 'a' && scheme[0] <= 'z' || scheme[0] >= 'A' && scheme[0] <= 'Z') {
			return false, fmt.Sprintf("%q before the first ':' is not a scheme, and a relative reference's first segment cannot contain ':' (write ./%s)", scheme, rest)
		}
		for j := 1; j < len(scheme); j++ {
			if c := scheme[j]; c >= 128 || uriChar[c]&cScheme == 0 {
				return false, fmt.Sprintf("scheme %q: %q is not allowed", scheme, c)
			}
		}
		absolute = true
		rest, at = rest[i+1:], i+1
	}
	if strings.HasPrefix(rest, "//") {
		auth := rest[2:]
		path := ""
		if i := strings.IndexByte(auth, '/'); i >= 0 {
			auth, path = auth[:i], auth[i:]
		}
		if r := checkAuthority(auth, at+2); r != "" {
			return absolute, "authority: " + r
		}
		rest, at = path, at+2+len(auth)
	}
	if r := checkChars(rest, ":@/", at); r != "" {
		return absolute, "path: " + r
	}
	return absolute, ""
}

func checkAuthority(a string, at int) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		if r := checkChars(a[:i], ":", at); r != "" {
			return "user information: " + r
		}
		a, at = a[i+1:], at+i+1
	}
	host, port := a, ""
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "unclosed '[' in the host"
		}
		lit := a[1:end]
		host, port = "", a[end+1:]
		if strings.HasPrefix(lit, "v") || strings.HasPrefix(lit, "V") {
			dot := strings.IndexByte(lit, '.')
			if dot < 2 || dot == len(lit)-1 || checkChars(lit[dot+1:], ":", 0) != "" || strings.Contains(lit[dot+1:], "%") {
				return fmt.Sprintf("%q is not an IPvFuture literal", lit)
			}
			for j := 1; j < dot; j++ {
				if !isHex(lit[j]) {
					return fmt.Sprintf("%q is not an IPvFuture literal", lit)
				}
			}
		} else if ip, err := netip.ParseAddr(lit); err != nil || !ip.Is6() || ip.Zone() != "" {
			return fmt.Sprintf("%q is not an IPv6 address", lit)
		}
		if port != "" && port[0] != ':' {
			return fmt.Sprintf("%q after the IP literal", port)
		}
	} else if i := strings.LastIndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i:]
	}
	if port != "" {
		for j := 1; j < len(port); j++ {
			if port[j] < '0' || port[j] > '9' {
				return fmt.Sprintf("port %q is not a number", port[1:])
			}
		}
	}
	if r := checkChars(host, "", at); r != "" {
		return "host: " + r
	}
	return ""
}

// validURIRef reports why s is not a URI-reference (the CloudEvents type of
// source and of the dataref extension), or "".
func validURIRef(s string) string {
	if _, r := parseURIRef(s); r != "" {
		return fmt.Sprintf("%q is not a URI-reference (RFC 3986): %s", s, r)
	}
	return ""
}

// validURI reports why s is not an absolute URI with a scheme (the
// CloudEvents type of dataschema), or "".
func validURI(s string) string {
	abs, r := parseURIRef(s)
	if r != "" {
		return fmt.Sprintf("%q is not an absolute URI (RFC 3986): %s", s, r)
	}
	if !abs {
		return fmt.Sprintf("%q is not an absolute URI: it has no scheme such as https:", s)
	}
	return ""
}
