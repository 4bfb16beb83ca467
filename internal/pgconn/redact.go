package pgconn

import (
	"errors"
	"regexp"
	"strings"

	pgxconn "github.com/jackc/pgx/v5/pgconn"
)

// passwordKV finds a password in a key/value connection string (also
// sslpassword, and password=... in a URL's query): a single-quoted value with
// backslash escapes (unterminated: to the end) or everything up to white
// space.
var passwordKV = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s']\S*)`)

// redactMask replaces a secret.
const redactMask = "xxxxx"

// redact removes passwords from an error's text. A connection string that
// could not be parsed is redacted as a whole (see RedactConnString), and the
// parser's own detail, which may quote part of it, is left out.
func redact(err error) error {
	var pce *pgxconn.ParseConfigError
	if errors.As(err, &pce) {
		return &redacted{msg: parseErrorText(pce), err: err}
	}
	s := err.Error()
	r := RedactURL(s)
	if r == s {
		return err
	}
	return &redacted{msg: r, err: err}
}

// RedactError returns err with every password in its text replaced by
// "xxxxx"; errors.Is and errors.As still see the original. A
// *pgxconn.ParseConfigError is described without the parser's detail, which
// can quote pieces of an unparseable password.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	return redact(err)
}

// parseErrorText describes a connection string pgx could not parse, without
// any part of its password.
func parseErrorText(pce *pgxconn.ParseConfigError) string {
	// pgx's text is "cannot parse `<its redaction>`: <what> (<detail>)"; its
	// redaction and the detail can both show pieces of a password that has
	// unencoded '@', ':', '%' or spaces. Keep only <what>.
	s := pce.Error()
	if inner := errors.Unwrap(pce); inner != nil {
		s = strings.TrimSuffix(s, " ("+inner.Error()+")")
	}
	what := "invalid connection string"
	if i := strings.LastIndex(s, "`: "); i >= 0 {
		what = s[i+3:]
	}
	msg := "cannot parse `" + RedactConnString(pce.ConnString) + "`: " + what
	if strings.Contains(what, "URL") || strings.Contains(what, "port") {
		msg += " (in a URL, percent-encode @ : / ? # % and spaces in the user name and password, or use the key/value form: password='...')"
	}
	return msg
}

// RedactURL replaces the passwords of connection strings and URLs found in
// the text s with "xxxxx": in key/value form (password=..., quoted or not) and
// in URLs (scheme://user:password@host), where everything from the first ':'
// after the user name to the last '@' of the URL is the password, so that a
// password with unencoded '@', ':', '%' or spaces is hidden whole. A URL
// ends at a line break, a backquote, a double quote or the next URL, so a
// later '@' on the same line may hide more than the password; never less.
func RedactURL(s string) string {
	return redactURLs(passwordKV.ReplaceAllString(s, "${1}"+redactMask), false)
}

// RedactConnString is RedactURL for a string known to be one connection
// string: a URL's user-info extends to its last '@' whatever comes between.
func RedactConnString(s string) string {
	return redactURLs(passwordKV.ReplaceAllString(s, "${1}"+redactMask), true)
}

// redactURLs masks the password of every scheme://user:password@ in s. With
// whole, s is a single URL.
func redactURLs(s string, whole bool) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 || !hasScheme(s[:i]) {
			if i < 0 {
				b.WriteString(s)
				return b.String()
			}
			b.WriteString(s[:i+3])
			s = s[i+3:]
			continue
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		end := len(s)
		if !whole {
			if j := strings.IndexAny(s, "\n`\""); j >= 0 {
				end = j
			}
			if j := strings.Index(s[:end], "://"); j >= 0 {
				end = j
			}
		}
		at := strings.LastIndexByte(s[:end], '@')
		colon := strings.IndexByte(s[:max(at, 0)], ':')
		if at < 0 || colon < 0 {
			continue // no user-info, or no password in it
		}
		b.WriteString(s[:colon+1])
		b.WriteString(redactMask)
		s = s[at:]
	}
}

// hasScheme reports whether s ends with a URL scheme (RFC 3986: a letter,
// then letters, digits, '+', '-' or '.').
func hasScheme(s string) bool {
	n := 0
	for n < len(s) {
		c := s[len(s)-1-n]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.' {
			n++
			continue
		}
		break
	}
	for n > 0 { // the scheme starts at its first letter
		c := s[len(s)-n]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
			return true
		}
		n--
	}
	return false
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }
