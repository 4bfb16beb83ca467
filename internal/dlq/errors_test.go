package dlq

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outbox-cdc/outbox-cdc/sink"
)

// PostgreSQL's refusals of the dead-letter table are mapped, by SQLSTATE,
// to an *Error that says what to do and is permanent; anything else (a lost
// connection) is left as it is, to be retried.
func TestMapError(t *testing.T) {
	t.Parallel()
	s := &Store{name: "public.outbox_dead_letter"}
	for _, tc := range []struct {
		code string
		want string // in the message; "" for an error left as it is
	}{
		{"42P01", "does not exist: run `outbox-cdc setup`"},
		{"42703", "older than this outbox-cdc: run `outbox-cdc setup` to upgrade it"},
		{"42P10", "older than this outbox-cdc"},
		{"42501", "grant SELECT, INSERT, UPDATE"},
		{"08006", ""},
		{"57P01", ""},
	} {
		cause := &pgconn.PgError{Code: tc.code, Message: "refused"}
		err := fmt.Errorf("dlq: store row: %w", s.mapError(cause))
		var derr *Error
		if tc.want == "" {
			if errors.As(err, &derr) || sink.IsPermanent(err) {
				t.Errorf("%s: %v mapped to a permanent error", tc.code, err)
			}
			continue
		}
		if !errors.As(err, &derr) || !sink.IsPermanent(err) || !errors.Is(err, cause) {
			t.Errorf("%s: %v: want a permanent *Error wrapping the server's", tc.code, err)
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "public.outbox_dead_letter") {
			t.Errorf("%s: %q does not say %q about the table", tc.code, err, tc.want)
		}
	}
}
