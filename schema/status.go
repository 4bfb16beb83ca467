package schema

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SlotStatus is the server's view of the replication slot.
type SlotStatus struct {
	Slot      string `json:"slot"`
	Exists    bool   `json:"exists"`
	Active    bool   `json:"active"`
	ActivePID *int32 `json:"active_pid,omitempty"`
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
}

// Status reads the slot's figures. A missing slot is not an error: Exists is
// false.
func Status(ctx context.Context, conn *pgx.Conn, slot string) (SlotStatus, error) {
	st := SlotStatus{Slot: slot}
	err := conn.QueryRow(ctx, `
SELECT active, active_pid,
       coalesce(confirmed_flush_lsn::text, ''), coalesce(restart_lsn::text, ''),
       pg_current_wal_lsn()::text,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint,
       coalesce(wal_status, ''), safe_wal_size
FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(
		&st.Active, &st.ActivePID, &st.ConfirmedFlushLSN, &st.RestartLSN, &st.CurrentLSN,
		&st.LagBytes, &st.RetainedBytes, &st.WALStatus, &st.SafeWALSize)
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
	return st, nil
}
