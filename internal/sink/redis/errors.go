package redis

import (
	"context"
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

// Temporary reports whether retrying the same command can succeed without
// anyone changing the data: the server is loading, busy, failing over, out of
// memory (an operator can free it; the sink waits), or rejected our
// credentials on a reconnect (an operator restores them; the events are not
// at fault). WRONGTYPE, NOPERM, NOSTREAM, CROSSSLOT, MOVED and other ERR
// replies are permanent.
func (e *ServerError) Temporary() bool {
	switch e.Code {
	case "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY",
		"NOREPLICAS", "OOM", "MISCONF", "NOAUTH", "WRONGPASS", "NOSCRIPT":
		return true
	case "ERR":
		return e.Msg == "ERR max number of clients reached"
	}
	return false
}

// errNoStream is the reply of XADD NOMKSTREAM on a missing stream.
var errNoStream = newServerError("NOSTREAM the stream does not exist and nomkstream is set", nil)

// failure classes of a round trip.
type failure uint8

const (
	transient failure = iota // retry with backoff
	permanent                // *sink.PermanentError, stop
	noScript                 // load the script, then retry
	stopped                  // the sink is closing
)

// classify sorts a round trip's error.
func classify(err error) (failure, error) {
	if errors.Is(err, context.Canceled) || errors.Is(err, goredis.ErrClosed) {
		return stopped, err
	}
	if errors.Is(err, goredis.Nil) {
		return permanent, errNoStream
	}
	var se *ServerError
	if !errors.As(err, &se) {
		var re goredis.Error
		if !errors.As(err, &re) {
			return transient, err // network, timeout, pool
		}
		se = newServerError(re.Error(), err)
	}
	switch {
	case se.Code == "NOSCRIPT":
		return noScript, se
	case se.Temporary():
		return transient, se
	}
	return permanent, se
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
