package schema

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Failover slot modes (Names.FailoverSlot).
const (
	// FailoverAuto makes the slot a failover slot on PostgreSQL 17 and
	// newer and a plain slot before.
	FailoverAuto = "auto"
	// FailoverOn makes it a failover slot or fails (PostgreSQL 17+).
	FailoverOn = "on"
	// FailoverOff makes a plain slot, lost at a failover.
	FailoverOff = "off"
)

// FailoverSlotsSince is the first PostgreSQL major with failover slots.
const FailoverSlotsSince = 17

// VersionsDoc is the page on PostgreSQL versions, standbys and failover.
const VersionsDoc = "docs/postgres-versions.md"

// ServerVersion returns the server's major version (e.g. 17) from
// server_version_num.
func ServerVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var num int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num); err != nil {
		return 0, fmt.Errorf("postgres: %w", explain(err))
	}
	return num / 10000, nil
}

// ErrStandby is matched (errors.Is) by the error Setup and Check return
// when the server is a standby.
var ErrStandby = errors.New("postgres: server is a standby")

// checkPrimary refuses a standby (pg_is_in_recovery): outbox-cdc streams
// from the primary. Decoding on a standby (PostgreSQL 16+) is not
// supported: the heartbeat, retention and setup write to the database, and a
// slot made on a standby is not synchronized anywhere.
func checkPrimary(ctx context.Context, conn *pgx.Conn, major int) error {
	var recovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovery); err != nil {
		return fmt.Errorf("postgres: %w", explain(err))
	}
	if !recovery {
		return nil
	}
	return fmt.Errorf("%w: %s:%d is a standby (PostgreSQL %d, in recovery) and outbox-cdc streams from the primary only "+
		"(decoding on a standby is not supported: the heartbeat and setup write to the database, and a standby's own slot is lost at a failover): "+
		"point postgres.url at the primary, or list every host with target_session_attrs=read-write "+
		"(postgres://h1,h2/db?target_session_attrs=read-write) so that outbox-cdc follows a promotion; see %s",
		ErrStandby, conn.Config().Host, conn.Config().Port, major, VersionsDoc)
}

// createSlot creates the pgoutput slot, as a failover slot when mode and
// the server's major allow.
func createSlot(ctx context.Context, conn *pgx.Conn, n Names, major int, say func(string)) error {
	failover, err := wantFailover(n.FailoverSlot, major)
	if err != nil {
		return err
	}
	sql := "SELECT pg_create_logical_replication_slot($1, 'pgoutput')"
	if failover {
		sql = "SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)"
	}
	if _, err := conn.Exec(ctx, sql, n.Slot); err != nil {
		return fmt.Errorf("setup: create replication slot %s: %w", n.Slot, explain(err))
	}
	kind := "replication slot "
	if failover {
		kind = "failover replication slot "
	}
	say(kind + n.Slot + " created; it keeps WAL until outbox-cdc confirms it: run `outbox-cdc teardown --yes` if you remove outbox-cdc")
	if failover {
		say("a standby keeps a copy of failover slot " + n.Slot + " only with sync_replication_slots = on and hot_standby_feedback = on on the standby and synchronized_standby_slots naming its physical slot on the primary; see " + VersionsDoc)
	}
	return nil
}

// wantFailover decides whether the slot should be a failover slot.
func wantFailover(mode string, major int) (bool, error) {
	switch mode {
	case "", FailoverAuto:
		return major >= FailoverSlotsSince, nil
	case FailoverOff:
		return false, nil
	case FailoverOn:
		if major < FailoverSlotsSince {
			return false, fmt.Errorf("setup: postgres.failover_slot is on, but PostgreSQL %d has no failover slots (PostgreSQL %d and newer have): "+
				"upgrade the server, or set postgres.failover_slot: auto (a plain slot, which a promoted standby does not have; see %s)",
				major, FailoverSlotsSince, VersionsDoc)
		}
		return true, nil
	}
	return false, fmt.Errorf("setup: postgres.failover_slot %q: want auto, on or off", mode)
}

// ensureFailover makes an existing slot a failover slot when it should be
// one (ALTER_REPLICATION_SLOT on a replication connection, PostgreSQL 17+).
func ensureFailover(ctx context.Context, conn *pgx.Conn, n Names, major int, say func(string)) error {
	want, err := wantFailover(n.FailoverSlot, major)
	if err != nil || major < FailoverSlotsSince {
		return err
	}
	var failover, active bool
	if err := conn.QueryRow(ctx, "SELECT coalesce((to_jsonb(s)->>'failover')::boolean, false), active FROM pg_replication_slots s WHERE slot_name = $1",
		n.Slot).Scan(&failover, &active); err != nil {
		return fmt.Errorf("setup: %w", explain(err))
	}
	if failover == want {
		return nil
	}
	if active {
		say(fmt.Sprintf("replication slot %s should %sbe a failover slot (postgres.failover_slot: %s) but is being streamed: stop outbox-cdc and run `outbox-cdc setup` again to change it",
			n.Slot, map[bool]string{true: "", false: "not "}[want], modeOr(n.FailoverSlot)))
		return nil
	}
	rc := conn.Config().Config.Copy()
	rc.RuntimeParams["replication"] = "database"
	rconn, err := pgconn.ConnectConfig(ctx, rc)
	if err != nil {
		return fmt.Errorf("setup: replication connection to make slot %s a failover slot: %w", n.Slot, explain(err))
	}
	defer rconn.Close(context.Background())
	cmd := fmt.Sprintf("ALTER_REPLICATION_SLOT %s ( FAILOVER %t )", pgx.Identifier{n.Slot}.Sanitize(), want)
	if _, err := rconn.Exec(ctx, cmd).ReadAll(); err != nil {
		return fmt.Errorf("setup: %s: %w", cmd, explain(err))
	}
	if want {
		say("replication slot " + n.Slot + " is now a failover slot (PostgreSQL " + fmt.Sprint(major) + "): a standby with sync_replication_slots = on keeps a copy; see " + VersionsDoc)
	} else {
		say("replication slot " + n.Slot + " is no longer a failover slot (postgres.failover_slot: off)")
	}
	return nil
}

func modeOr(m string) string {
	if m == "" {
		return FailoverAuto
	}
	return m
}

// versionWarnings returns what a start should know about the server's
// version: a partitioned outbox on PostgreSQL 14 (a detached partition keeps
// streaming), and on 17+ a slot that a promoted standby would not have or
// could have behind what outbox-cdc was sent.
func versionWarnings(ctx context.Context, conn *pgx.Conn, n Names, major int) ([]string, error) {
	var out []string
	if major < 15 && len(n.Tables) > 0 {
		var parts []string
		rows, err := conn.Query(ctx, "SELECT t FROM unnest($1::text[]) t WHERE (SELECT relkind FROM pg_class WHERE oid = to_regclass(t)) = 'p'", quotedAll(n.Tables))
		if err != nil {
			return nil, fmt.Errorf("postgres: %w", explain(err))
		}
		if parts, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return nil, fmt.Errorf("postgres: %w", explain(err))
		}
		if len(parts) > 0 {
			out = append(out, fmt.Sprintf("PostgreSQL %d keeps streaming the rows of a partition detached from the partitioned outbox %s as outbox rows until outbox-cdc reconnects (fixed in PostgreSQL 15): "+
				"after ALTER TABLE ... DETACH PARTITION, wait until `outbox-cdc status` shows the slot confirmed past it, then restart outbox-cdc before writing into the detached table; see %s",
				major, strings.Join(parts, ", "), VersionsDoc))
		}
	}
	if major < FailoverSlotsSince {
		return out, nil
	}
	var failover bool
	var standbys int
	var syncSlots string
	err := conn.QueryRow(ctx, `SELECT coalesce((SELECT (to_jsonb(s)->>'failover')::boolean FROM pg_replication_slots s WHERE slot_name = $1), false),
		(SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'
		   AND pid NOT IN (SELECT active_pid FROM pg_replication_slots WHERE slot_type = 'logical' AND active_pid IS NOT NULL)),
		current_setting('synchronized_standby_slots', true)`, n.Slot).Scan(&failover, &standbys, &syncSlots)
	if err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			return nil, fmt.Errorf("postgres: %w", explain(err))
		}
		return out, nil // the role may not read pg_stat_replication's details; nothing to say then
	}
	switch {
	case !failover && n.FailoverSlot != FailoverOff:
		out = append(out, fmt.Sprintf("replication slot %s is not a failover slot, so a standby promoted after a failover will not have it and rows written after the promotion would never be streamed: "+
			"stop outbox-cdc and run `outbox-cdc setup` to make it one (PostgreSQL %d has failover slots), or set postgres.failover_slot: off to keep it as it is; see %s", n.Slot, major, VersionsDoc))
	case failover && standbys > 0 && syncSlots == "":
		out = append(out, fmt.Sprintf("%d physical standby(s) stream from this PostgreSQL %d but synchronized_standby_slots is empty: outbox-cdc may be sent (and deliver) transactions a promoted standby never received, and the standby's copy of slot %s can lag behind: "+
			"set synchronized_standby_slots to the standbys' physical slots on the primary (and sync_replication_slots = on on each standby); see %s", standbys, major, n.Slot, VersionsDoc))
	}
	return out, nil
}

func quotedAll(tables []string) []string {
	out := make([]string, len(tables))
	for i, t := range tables {
		out[i] = quoteQualified(t)
	}
	return out
}
