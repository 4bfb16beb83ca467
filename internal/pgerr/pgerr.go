// Package pgerr maps PostgreSQL's errors once, where they enter outbox-cdc:
// which ones a new attempt may not meet (a lost connection, a server shutting
// down, a timeout, a serialization failure) and which ones it will meet
// again (a missing table, a missing privilege, bad data). The packages that
// talk to PostgreSQL (catalog, dlq, replication) turn that into their own
// typed errors, whose Permanent method answers sink.IsPermanent.
package pgerr

import (
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Code returns the SQLSTATE of the PostgreSQL error in err's chain, or "".
func Code(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Transient reports whether a new attempt, on a new connection if need be,
// may succeed where err failed: a connection that failed or was lost, a
// timeout, a server shutting down or out of resources, a serialization
// failure or deadlock, a lock not available, a cancelled statement; and an
// error pgx itself says is safe to retry. Everything else the server says
// (SQLSTATE classes 22, 23, 28, 3D, 42, 55000 and the like) is not: the same
// statement meets it again.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	if code := Code(err); code != "" {
		switch {
		case strings.HasPrefix(code, "08"), // connection exception
			strings.HasPrefix(code, "53"),    // insufficient resources
			strings.HasPrefix(code, "57P"),   // admin/crash shutdown, cannot connect now
			code == "57014",                  // query_canceled (statement_timeout)
			code == "40001", code == "40P01", // serialization failure, deadlock
			code == "55P03": // lock_not_available
			return true
		}
		return false
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}
