package replication

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// classify maps a server error onto a FatalError when reconnecting cannot fix
// it, with a message that says what to do. Other errors are returned as they
// are and retried.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return redact(err)
	}
	switch {
	case pgErr.Code == "42501" || (pgErr.Code == "28000" && containsAny(pgErr.Message, "replication")):
		return &FatalError{fmt.Errorf("postgres: permission denied: %s (the role needs the REPLICATION attribute: ALTER ROLE <role> WITH REPLICATION; docs/security.md lists what each role needs)", pgErr.Message)}
	case pgErr.Code == "28P01" || pgErr.Code == "28000":
		return &FatalError{fmt.Errorf("postgres: authentication failed: %s (check postgres.url)", pgErr.Message)}
	case pgErr.Code == "3D000":
		return &FatalError{fmt.Errorf("postgres: %s (check postgres.url)", pgErr.Message)}
	case pgErr.Code == "55000" && containsAny(pgErr.Message, "wal_level"):
		return &FatalError{fmt.Errorf("postgres: %s: set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL", pgErr.Message)}
	case pgErr.Code == "42704":
		return &FatalError{fmt.Errorf("postgres: %s: run `outbox-cdc setup`", pgErr.Message)}
	}
	return err
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if regexp.MustCompile("(?i)" + regexp.QuoteMeta(sub)).MatchString(s) {
			return true
		}
	}
	return false
}

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
	var pce *pgconn.ParseConfigError
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
// *pgconn.ParseConfigError is described without the parser's detail, which
// can quote pieces of an unparseable password.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	return redact(err)
}

// parseErrorText describes a connection string pgx could not parse, without
// any part of its password.
func parseErrorText(pce *pgconn.ParseConfigError) string {
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

// StandbyError says that the server outbox-cdc connected to is a standby
// (in recovery). The stream reconnects, which finds the primary through a
// multi-host URL with target_session_attrs=read-write, or this server once
// it is promoted; decoding on a standby (PostgreSQL 16+) is not supported.
type StandbyError struct {
	Addr    string // the server's address
	Version int    // the server's major, 0 when unknown
}

func (e *StandbyError) Error() string {
	return fmt.Sprintf("postgres: %s is a standby (PostgreSQL %d, in recovery); outbox-cdc streams from the primary only and waits for it: "+
		"list every host in postgres.url with target_session_attrs=read-write (postgres://h1,h2/db?target_session_attrs=read-write) "+
		"so that outbox-cdc finds the primary after a promotion; see docs/postgres-versions.md", e.Addr, e.Version)
}
