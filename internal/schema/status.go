package schema

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/outbox-cdc/outbox-cdc/internal/replication"
)

// SlotStatus is the server's view of the replication slot.
type SlotStatus struct {
	Slot      string `json:"slot"`
	Exists    bool   `json:"exists"`
	Active    bool   `json:"active"`
	ActivePID *int32 `json:"active_pid,omitempty"`
	// Holder is the process streaming the slot, from pg_stat_activity; nil
	// when the slot is inactive.
	Holder *replication.Holder `json:"holder,omitempty"`
	// ConfirmedFlushLSN is how far outbox-cdc has confirmed.
	ConfirmedFlushLSN string `json:"confirmed_flush_lsn,omitempty"`
	// RestartLSN is the oldest WAL the slot keeps.
	RestartLSN string `json:"restart_lsn,omitempty"`
	// CurrentLSN is the server's current WAL insert position.
	CurrentLSN string `json:"current_lsn"`
	// LagBytes is CurrentLSN - ConfirmedFlushLSN.
	LagBytes int64 `json:"lag_bytes"`
	// RetainedBytes is CurrentLSN - RestartLSN: the WAL the slot pins.
	RetainedBytes int64 `json:"retained_bytes"`
	// WALStatus is reserved, extended, unreserved or lost.
	WALStatus string `json:"wal_status,omitempty"`
	// SafeWALSize is how much more WAL may be written before the slot is in
	// danger of losing WAL (max_slot_wal_keep_size); nil when unlimited.
	SafeWALSize *int64 `json:"safe_wal_size,omitempty"`
	// Invalidated is set when the server invalidated the slot (wal_status
	// lost, or an invalidation_reason on PostgreSQL 17+): it can never
	// stream again. InvalidationCause says why, Invalidation is the error
	// with the recovery.
	Invalidated       bool   `json:"invalidated,omitempty"`
	InvalidationCause string `json:"invalidation_cause,omitempty"`
	Invalidation      string `json:"invalidation,omitempty"`
	// InactiveSince is when the slot was last streamed (PostgreSQL 17+).
	InactiveSince *time.Time `json:"inactive_since,omitempty"`
}

// Err returns a *replication.SlotInvalidatedError for an invalidated slot,
// else nil.
func (st SlotStatus) Err() error {
	if !st.Invalidated {
		return nil
	}
	e := &replication.SlotInvalidatedError{Slot: st.Slot, Cause: st.InvalidationCause}
	if lsn, err := pglogrepl.ParseLSN(st.ConfirmedFlushLSN); err == nil {
		e.Confirmed = uint64(lsn)
	}
	if st.InactiveSince != nil {
		e.InactiveSince = *st.InactiveSince
	}
	return e
}

// Status reads the slot's figures. A missing slot is not an error: Exists is
// false.
func Status(ctx context.Context, conn *pgx.Conn, slot string) (SlotStatus, error) {
	st := SlotStatus{Slot: slot}
	var invReason, conflicting, inactive, app, addr, user, backend string
	var port int
	err := conn.QueryRow(ctx, `
SELECT s.active, s.active_pid,
       coalesce(s.confirmed_flush_lsn::text, ''), coalesce(s.restart_lsn::text, ''),
       pg_current_wal_lsn()::text,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::bigint,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn), 0)::bigint,
       coalesce(s.wal_status, ''), s.safe_wal_size,
       coalesce(to_jsonb(s)->>'invalidation_reason', ''), coalesce(to_jsonb(s)->>'conflicting', ''),
       coalesce(to_jsonb(s)->>'inactive_since', ''),
       coalesce(a.application_name, ''), coalesce(host(a.client_addr), ''), coalesce(a.client_port, 0),
       coalesce(a.usename::text, ''), coalesce(a.backend_type, '')
FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
WHERE s.slot_name = $1`, slot).Scan(
		&st.Active, &st.ActivePID, &st.ConfirmedFlushLSN, &st.RestartLSN, &st.CurrentLSN,
		&st.LagBytes, &st.RetainedBytes, &st.WALStatus, &st.SafeWALSize,
		&invReason, &conflicting, &inactive, &app, &addr, &port, &user, &backend)
	if errors.Is(err, pgx.ErrNoRows) {
		if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&st.CurrentLSN); err != nil {
			return st, fmt.Errorf("postgres: %w", err)
		}
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("postgres: %w", explain(err))
	}
	st.Exists = true
	if st.Active && st.ActivePID != nil {
		st.Holder = &replication.Holder{PID: int(*st.ActivePID), ApplicationName: app, ClientAddr: addr, ClientPort: port, User: user, BackendType: backend}
	}
	if t, err := time.Parse(time.RFC3339Nano, inactive); err == nil {
		st.InactiveSince = &t
	}
	if cause := replication.InvalidationCause(st.WALStatus, invReason, conflicting); cause != "" {
		st.Invalidated, st.InvalidationCause = true, cause
		st.Invalidation = st.Err().Error()
	}
	return st, nil
}

// checkSlotUsable returns a *replication.SlotInvalidatedError when the
// server invalidated the slot.
func checkSlotUsable(ctx context.Context, conn *pgx.Conn, slot string) error {
	st, err := Status(ctx, conn, slot)
	if err != nil {
		return err
	}
	return st.Err()
}
