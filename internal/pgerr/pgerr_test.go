package pgerr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outbox-cdc/outbox-cdc/internal/pgerr"
)

func TestTransient(t *testing.T) {
	t.Parallel()
	pg := func(code string) error { return fmt.Errorf("query: %w", &pgconn.PgError{Code: code, Message: "m"}) }
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{pg("08006"), true},  // connection_failure
		{pg("57P01"), true},  // admin_shutdown
		{pg("57P03"), true},  // cannot_connect_now
		{pg("53300"), true},  // too_many_connections
		{pg("57014"), true},  // query_canceled
		{pg("40001"), true},  // serialization_failure
		{pg("40P01"), true},  // deadlock_detected
		{pg("55P03"), true},  // lock_not_available
		{pg("42501"), false}, // insufficient_privilege
		{pg("42P01"), false}, // undefined_table
		{pg("28P01"), false}, // invalid_password
		{pg("22021"), false}, // character_not_in_repertoire
		{pg("XX000"), false}, // internal_error
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("read: %w", io.EOF), true},
		{errors.New("something else"), false},
		{context.Canceled, false},
	} {
		if got := pgerr.Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if got := pgerr.Code(fmt.Errorf("x: %w", &pgconn.PgError{Code: "42P01"})); got != "42P01" {
		t.Errorf("Code = %q", got)
	}
	if got := pgerr.Code(errors.New("x")); got != "" {
		t.Errorf("Code of a non-PostgreSQL error = %q", got)
	}
}
