package replication_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outbox-cdc/outbox-cdc/internal/catalog"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
	"github.com/outbox-cdc/outbox-cdc/internal/schema"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Every error that reaches the stream from its consumer (the decoder, the
// catalog) or from the server says, through the one predicate, whether the
// stream stops for good or reconnects.
func TestErrorVerdicts(t *testing.T) {
	t.Parallel()
	pgErr := &pgconn.PgError{Code: "42501", Message: "permission denied"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"a row that cannot become an event", &decoder.Error{Table: "public.outbox", Reason: "no type"}, true},
		{"a malformed pgoutput message", fmt.Errorf("%w: truncated begin", decoder.ErrProtocol), true},
		{"an outbox table that left the publication", &schema.DriftError{Table: "public.outbox", What: "left the publication", Fix: "add it back"}, true},
		{"a catalog query the server refuses", &catalog.QueryError{Err: pgErr}, true},
		{"a closed catalog", catalog.ErrClosed, true},
		{"a catalog that cannot reach the server", &catalog.Unavailable{Err: errors.New("connection reset")}, false},
		{"what reconnecting cannot fix", &replication.FatalError{Err: pgErr}, true},
		{"a lost connection", fmt.Errorf("replication: receive: %w", errors.New("EOF")), false},
		{"a stop", context.Canceled, false},
	} {
		if got := sink.IsPermanent(tc.err); got != tc.want {
			t.Errorf("%s (%v): IsPermanent = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
	if !errors.Is(fmt.Errorf("%w: x", decoder.ErrProtocol), decoder.ErrProtocol) {
		t.Error("errors.Is does not find ErrProtocol")
	}
}
