package replication

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	pgc "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

func TestInvalidationCause(t *testing.T) {
	for _, tc := range []struct {
		walStatus, reason, conflicting string
		want                           string // a part of the cause; "" for a usable slot
	}{
		{"reserved", "", "", ""},
		{"extended", "", "false", ""},
		{"unreserved", "", "", ""},
		{"lost", "", "", "max_slot_wal_keep_size"},
		{"lost", "wal_removed", "", "wal_removed"},
		{"reserved", "rows_removed", "true", "rows_removed"},
		{"", "", "true", "conflicting"},
		{"reserved", "some_future_reason", "", "some_future_reason"},
	} {
		got := InvalidationCause(tc.walStatus, tc.reason, tc.conflicting)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("InvalidationCause(%q, %q, %q) = %q, want %q", tc.walStatus, tc.reason, tc.conflicting, got, tc.want)
		}
	}
}

// The server's refusal to stream an invalidated slot is fatal and named, not
// retried with the raw message (PostgreSQL 15 and 16+ wordings).
func TestInvalidatedSlotRefusalIsFatal(t *testing.T) {
	s := &Stream{cfg: Config{Slot: "outbox_cdc"}}
	for _, pgErr := range []*pgconn.PgError{
		{Code: "55000", Message: `cannot read from logical replication slot "outbox_cdc"`, Detail: "This slot has been invalidated because it exceeded the maximum reserved size."},
		{Code: "55000", Message: `can no longer get changes from replication slot "outbox_cdc"`, Detail: "This replication slot has been invalidated due to \"wal_removed\"."},
	} {
		err := s.classify(pgErr, 0x1938D18)
		var fatal *FatalError
		if !errors.As(err, &fatal) || !errors.Is(err, ErrSlotInvalidated) {
			t.Fatalf("classify(%v) = %v, want a fatal ErrSlotInvalidated", pgErr, err)
		}
		for _, w := range []string{`replication slot "outbox_cdc" was invalidated`, "0/1938D18", "pg_drop_replication_slot('outbox_cdc')", "outbox-cdc setup", "outbox-cdc backfill --since"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error does not say %q: %v", w, err)
			}
		}
	}
	// Other 55000 errors stay as they were.
	if err := s.classify(&pgconn.PgError{Code: "55000", Message: "something else"}, 0); errors.Is(err, ErrSlotInvalidated) {
		t.Errorf("an unrelated 55000 error was taken for an invalidated slot: %v", err)
	}
}

func TestHolderNamesTheProgram(t *testing.T) {
	other := &Holder{PID: 4242, ApplicationName: "pg_recvlogical", ClientAddr: "127.0.0.1", ClientPort: 50432, User: "app", BackendType: "walsender"}
	if got, want := other.String(), "pg_recvlogical (pid 4242, walsender, client 127.0.0.1:50432, user app)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if w := other.Waiting("outbox_cdc"); !strings.Contains(w, "not by outbox-cdc") || !strings.Contains(w, "pg_recvlogical (pid 4242") {
		t.Errorf("Waiting() = %q", w)
	}
	ours := &Holder{PID: 7, ApplicationName: pgc.ApplicationName, ClientPort: -1}
	if got, want := ours.String(), "outbox-cdc (pid 7, client on a Unix socket)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if w := ours.Waiting("outbox_cdc"); !strings.HasPrefix(w, "standby: ") {
		t.Errorf("Waiting() = %q", w)
	}
}
