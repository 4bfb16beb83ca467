package redis

import (
	"errors"
	"fmt"
	"net"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// ServerError is an error reply from Redis, for an event or a whole round
// trip. Code is the reply's first word ("WRONGTYPE", "OOM", "NOPERM", ...).
type ServerError struct {
	Code string
	Msg  string // the full reply, starting with Code
	err  error  // the go-redis error, if the reply came as one
}

func (e *ServerError) Error() string { return "redis: " + e.Msg }

func (e *ServerError) Unwrap() error { return e.err }

func newServerError(msg string, err error) *ServerError {
	code, _, _ := strings.Cut(msg, " ")
	return &ServerError{Code: code, Msg: msg, err: err}
}

// Permanent reports whether retrying the same command cannot succeed
// without someone changing the data or the configuration (for
// sink.IsPermanent): WRONGTYPE, NOPERM, NOSTREAM, IDCONFLICT, CROSSSLOT,
// MOVED and other ERR replies. Not permanent: the server is loading, busy,
// failing over, out of memory (an operator can free it; the sink waits),
// rejected our credentials on a reconnect (an operator restores them; the
// events are not at fault), lost its scripts (NOSCRIPT: the sink loads the
// script again), or has too many clients.
func (e *ServerError) Permanent() bool {
	switch e.Code {
	case "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY",
		"NOREPLICAS", "OOM", "MISCONF", "NOAUTH", "WRONGPASS", "NOSCRIPT":
		return false
	case "ERR":
		return e.Msg != "ERR max number of clients reached"
	}
	return true
}

// errNoStream is the reply of XADD NOMKSTREAM on a missing stream.
var errNoStream = newServerError("NOSTREAM the stream does not exist and nomkstream is set", nil)

// classify maps an error of a round trip to the sink's vocabulary, once, at
// the boundary: a reply from Redis becomes a *ServerError (permanent or not,
// see ServerError.Permanent); anything else (network, timeout, a closed
// client) is transient and returned as it is.
func classify(err error) error {
	if errors.Is(err, goredis.Nil) {
		return errNoStream
	}
	var se *ServerError
	if errors.As(err, &se) {
		return se
	}
	var re goredis.Error
	if errors.As(err, &re) {
		return newServerError(re.Error(), err)
	}
	return err
}

// isNoScript reports a NOSCRIPT reply: the server lost the guard script.
func isNoScript(err error) bool {
	var se *ServerError
	if errors.As(classify(err), &se) {
		return se.Code == "NOSCRIPT"
	}
	return false
}

// startupError turns an error of the startup checks into one naming the sink
// and the address and saying what to do. The password never appears: go-redis
// and Redis do not echo it.
func startupError(name, addr, user string, err error) error {
	if user == "" {
		user = "default"
	}
	var re goredis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		switch {
		case strings.HasPrefix(msg, "WRONGPASS"), strings.Contains(msg, "invalid password"), strings.Contains(msg, "invalid username-password"):
			return fmt.Errorf("sink %s: redis at %s rejected the credentials of user %q (%s): check username and password", name, addr, user, msg)
		case strings.HasPrefix(msg, "NOAUTH"):
			return fmt.Errorf("sink %s: redis at %s requires authentication (%s): set password, and username for an ACL user", name, addr, msg)
		case strings.HasPrefix(msg, "NOPERM"):
			return fmt.Errorf("sink %s: redis at %s: user %q lacks a permission (%s): grant the commands listed in the redis sink documentation", name, addr, user, msg)
		}
		return fmt.Errorf("sink %s: redis at %s: %s", name, addr, msg)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("sink %s: cannot connect to redis at %s: timed out (%v): check the address, the firewall and that redis-server is running", name, addr, err)
	}
	return fmt.Errorf("sink %s: cannot connect to redis at %s: %v: check the address, that redis-server is running, and the tls settings", name, addr, err)
}
