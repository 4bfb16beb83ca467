package replication

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	pgc "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

// ErrSlotInvalidated is matched (errors.Is) by a *SlotInvalidatedError.
var ErrSlotInvalidated = errors.New("replication: slot invalidated")

// SlotInvalidatedError says that the server invalidated the replication slot
// (pg_replication_slots.wal_status is "lost", or, on PostgreSQL 17 and newer,
// invalidation_reason is set): it can never stream again, and rows
// committed after its last confirmed position may never have been
// delivered. Reconnecting cannot fix it; the message gives the recovery.
type SlotInvalidatedError struct {
	// Slot is the slot's name.
	Slot string
	// Confirmed is the slot's last confirmed_flush_lsn; 0 when unknown.
	Confirmed uint64
	// Cause says in words why the server invalidated it.
	Cause string
	// InactiveSince is when the slot was last streamed (PostgreSQL 17 and
	// newer); zero when the server does not say.
	InactiveSince time.Time
}

func (e *SlotInvalidatedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replication slot %q was invalidated by the server (%s) and can never stream again", e.Slot, e.Cause)
	if e.Confirmed != 0 {
		fmt.Fprintf(&b, "; it was last confirmed at %s", pglogrepl.LSN(e.Confirmed))
	}
	if !e.InactiveSince.IsZero() {
		fmt.Fprintf(&b, " and last streamed at %s", e.InactiveSince.UTC().Format(time.RFC3339))
	}
	b.WriteString(", so rows committed after that may never have been delivered. ")
	fmt.Fprintf(&b, "To recover: drop it (SELECT pg_drop_replication_slot('%s')), run `outbox-cdc setup` to create it again, start `outbox-cdc run`, "+
		"then run `outbox-cdc backfill --since <when outbox-cdc stopped delivering>` to re-send the rows the slot lost "+
		"(brokers drop what they already hold; see docs/backfill.md)", e.Slot)
	return b.String()
}

// Is reports whether target is ErrSlotInvalidated.
func (e *SlotInvalidatedError) Is(target error) bool { return target == ErrSlotInvalidated }

// InvalidationCause returns why a slot with these pg_replication_slots
// values can no longer stream, or "" when it can. walStatus is wal_status;
// reason is invalidation_reason (PostgreSQL 17+, else ""); conflicting is
// the text of conflicting (PostgreSQL 16+: "true" or "false", else "").
func InvalidationCause(walStatus, reason, conflicting string) string {
	switch reason {
	case "":
	case "wal_removed":
		return "wal_removed: the WAL it still needed was removed, e.g. because max_slot_wal_keep_size was exceeded while outbox-cdc was stopped or behind"
	case "rows_removed":
		return "rows_removed: catalog rows it needed were removed (a logical slot on a standby)"
	case "wal_level_insufficient":
		return "wal_level_insufficient: wal_level was lowered below logical"
	case "idle_timeout":
		return "idle_timeout: it was unused for longer than idle_replication_slot_timeout"
	default:
		return reason
	}
	if walStatus == "lost" {
		return "wal_status lost: the WAL it still needed was removed, e.g. because max_slot_wal_keep_size was exceeded while outbox-cdc was stopped or behind"
	}
	if conflicting == "true" {
		return "conflicting: it conflicts with recovery on this standby"
	}
	return ""
}

// invalidatedRefusal reports whether a server error is the refusal to stream
// an invalidated slot.
func invalidatedRefusal(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55000" {
		return false
	}
	return containsAny(pgErr.Message, "can no longer get changes from replication slot", "cannot read from logical replication slot") ||
		containsAny(pgErr.Detail, "has been invalidated")
}

// Holder is the process that streams a replication slot, as
// pg_replication_slots.active_pid and pg_stat_activity describe it. Fields
// the server hides from the role (client details of other roles without
// pg_read_all_stats) are empty.
type Holder struct {
	PID             int    `json:"pid"`
	ApplicationName string `json:"application_name"`
	ClientAddr      string `json:"client_addr,omitempty"` // empty for a Unix socket or when hidden
	ClientPort      int    `json:"client_port,omitempty"`
	User            string `json:"user,omitempty"`
	BackendType     string `json:"backend_type,omitempty"` // "walsender" for a replication connection
}

// OutboxCDC reports whether the holder is an outbox-cdc (by its
// application_name).
func (h *Holder) OutboxCDC() bool { return h.ApplicationName == pgc.ApplicationName }

// String names the holder: "pg_recvlogical (pid 4242, walsender, client
// 127.0.0.1:50432, user app)".
func (h *Holder) String() string {
	name := h.ApplicationName
	switch {
	case name == "":
		name = "a program that sets no application_name"
	}
	parts := []string{"pid " + strconv.Itoa(h.PID)}
	if h.BackendType != "" {
		parts = append(parts, h.BackendType)
	}
	switch {
	case h.ClientAddr != "" && h.ClientPort > 0:
		parts = append(parts, "client "+h.ClientAddr+":"+strconv.Itoa(h.ClientPort))
	case h.ClientAddr != "":
		parts = append(parts, "client "+h.ClientAddr)
	case h.ClientPort < 0:
		parts = append(parts, "client on a Unix socket")
	}
	if h.User != "" {
		parts = append(parts, "user "+h.User)
	}
	return name + " (" + strings.Join(parts, ", ") + ")"
}

// Waiting says what a stream waiting for the slot is waiting for: a hot
// standby behind another outbox-cdc, or a slot taken by some other program.
func (h *Holder) Waiting(slot string) string {
	if h.OutboxCDC() {
		return fmt.Sprintf("standby: replication slot %s is streamed by another %s", slot, h)
	}
	return fmt.Sprintf("waiting: replication slot %s is held by %s, not by outbox-cdc; nothing is delivered until it lets go of the slot "+
		"(stop that program, or give it a slot of its own)", slot, h)
}
