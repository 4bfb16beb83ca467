package schema

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	pgc "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

//go:embed outbox.sql
var outboxSQL string

//go:embed dead_letter.sql
var deadLetterSQL string

//go:embed progress.sql
var progressSQL string

var (
	outboxTmpl     = template.Must(template.New("outbox.sql").Parse(outboxSQL))
	deadLetterTmpl = template.Must(template.New("dead_letter.sql").Parse(deadLetterSQL))
	progressTmpl   = template.Must(template.New("progress.sql").Parse(progressSQL))
)

// ProgressTable is the per-sink progress table: outbox_cdc_progress in the
// dead-letter table's schema.
func (n Names) ProgressTable() string {
	schema, _, _ := strings.Cut(n.deadLetter(), ".")
	return schema + ".outbox_cdc_progress"
}

// DefaultDeadLetterTable is where dead letters go unless configured.
const DefaultDeadLetterTable = "public.outbox_dead_letter"

// DeadLetterSQL returns the DDL of the dead-letter table.
func DeadLetterSQL(table string) (string, error) {
	_, name, _ := strings.Cut(table, ".")
	var b bytes.Buffer
	err := deadLetterTmpl.Execute(&b, map[string]string{
		"Table":        quoteQualified(table),
		"TableLiteral": "'" + strings.ReplaceAll(quoteQualified(table), "'", "''") + "'",
		"Index":        pgx.Identifier{name + "_status_idx"}.Sanitize(),
		"EventKey":     pgx.Identifier{name + "_event_key"}.Sanitize(),
		"InputKey":     pgx.Identifier{name + "_input_key"}.Sanitize(),
	})
	return b.String(), err
}

// Names are the server objects outbox-cdc uses.
type Names struct {
	Slot        string
	Publication string
	Tables      []string // schema-qualified outbox tables
	// DeadLetter is the schema-qualified dead-letter table; empty means
	// DefaultDeadLetterTable.
	DeadLetter string
	// DDLGuard is the setup's DDL guard mode: GuardAuto (default when
	// empty), GuardOn or GuardOff.
	DDLGuard string
	// FailoverSlot is whether setup makes the slot a failover slot:
	// FailoverAuto (default when empty: on PostgreSQL 17+), FailoverOn or
	// FailoverOff.
	FailoverSlot string
}

func (n Names) deadLetter() string {
	if n.DeadLetter == "" {
		return DefaultDeadLetterTable
	}
	return n.DeadLetter
}

// quoteQualified quotes "schema.table" as an SQL identifier pair.
func quoteQualified(name string) string {
	schema, table, ok := strings.Cut(name, ".")
	if !ok {
		return pgx.Identifier{name}.Sanitize()
	}
	return pgx.Identifier{schema, table}.Sanitize()
}

// OutboxSQL returns the DDL for one outbox table and its helper function
// (<table>_publish in the same schema).
func OutboxSQL(table string) (string, error) {
	schema, name, _ := strings.Cut(table, ".")
	var b bytes.Buffer
	err := outboxTmpl.Execute(&b, map[string]string{
		"Table":    quoteQualified(table),
		"Function": pgx.Identifier{schema, name + "_publish"}.Sanitize(),
	})
	return b.String(), err
}

// Setup creates what is missing, idempotently: each outbox table with the
// default layout (createTables), the publication WITH (publish = 'insert',
// publish_via_partition_root = true) covering the tables by OID (a
// partitioned outbox through its root), the record of each table's identity
// (TablesTable), the DDL guard (n.DDLGuard) and the permanent pgoutput slot.
// Run again it accepts the outbox as it is now: a table recreated under its
// name, or put back into the publication, is recorded anew (and say tells
// that rows written meanwhile need `outbox-cdc backfill`). It reports what it
// did through say.
func Setup(ctx context.Context, conn *pgx.Conn, n Names, createTables bool, say func(string)) error {
	major, err := ServerVersion(ctx, conn)
	if err != nil {
		return err
	}
	if err := checkPrimary(ctx, conn, major); err != nil {
		return err
	}
	if _, err := wantFailover(n.FailoverSlot, major); err != nil {
		return err
	}
	if err := checkWALLevel(ctx, conn); err != nil {
		return err
	}
	if _, err := pgc.UseUTF8(ctx, conn); err != nil {
		return err
	}
	switch n.DDLGuard {
	case "":
		n.DDLGuard = GuardAuto
	case GuardAuto, GuardOn, GuardOff:
	default:
		return fmt.Errorf("setup: postgres.ddl_guard %q: want auto, on or off", n.DDLGuard)
	}
	// The guard would refuse setup's own repairs of a drifted outbox.
	if _, err := conn.Exec(ctx, "SET "+AllowDDLSetting+" = on"); err != nil {
		return fmt.Errorf("setup: %w", explain(err))
	}
	defer conn.Exec(context.Background(), "RESET "+AllowDDLSetting)
	if err := checkRenamedAway(ctx, conn, n); err != nil {
		return err
	}
	if createTables {
		for _, t := range n.Tables {
			sql, err := OutboxSQL(t)
			if err != nil {
				return err
			}
			if _, err := conn.Exec(ctx, sql); err != nil {
				return fmt.Errorf("setup: create outbox table %s: %w", t, explain(err))
			}
			say("outbox table " + t + " is ready")
		}
	}
	for _, t := range n.Tables {
		if err := tableExists(ctx, conn, t); err != nil {
			return err
		}
	}
	dl, err := DeadLetterSQL(n.deadLetter())
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, dl); err != nil {
		return fmt.Errorf("setup: create dead-letter table %s: %w", n.deadLetter(), explain(err))
	}
	say("dead-letter table " + n.deadLetter() + " is ready")
	var pb bytes.Buffer
	if err := progressTmpl.Execute(&pb, map[string]string{"Table": quoteQualified(n.ProgressTable())}); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, pb.String()); err != nil {
		return fmt.Errorf("setup: create progress table %s: %w", n.ProgressTable(), explain(err))
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", n.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("setup: %w", explain(err))
	}
	pub := pgx.Identifier{n.Publication}.Sanitize()
	if !exists {
		quoted := make([]string, len(n.Tables))
		for i, t := range n.Tables {
			quoted[i] = quoteQualified(t)
		}
		// publish_via_partition_root: rows of a partitioned outbox's
		// partitions (also ones attached later) come as rows of the root.
		sql := fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s WITH (publish = 'insert', publish_via_partition_root = true)", pub, strings.Join(quoted, ", "))
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("setup: create publication %s: %w", n.Publication, explain(err))
		}
		say("publication " + n.Publication + " created")
		var slotExists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", n.Slot).Scan(&slotExists); err != nil {
			return fmt.Errorf("setup: %w", explain(err))
		}
		if slotExists {
			// pgoutput reads the publication as of each change: for WAL
			// written before it existed it fails ("publication does not
			// exist") and the slot cannot move past it.
			say("replication slot " + n.Slot + " is older than publication " + n.Publication + ": PostgreSQL cannot stream the slot's WAL from before the publication was created (\"publication does not exist\"). Start a new slot with `outbox-cdc teardown --yes` and `outbox-cdc setup`, then re-send what was written since the slot's last confirmed position with `outbox-cdc backfill`")
		}
	}
	if err := recordOutboxes(ctx, conn, n, n.DDLGuard != GuardOff, say); err != nil {
		return err
	}
	if exists {
		say("publication " + n.Publication + " is ready")
	}
	if err := installGuard(ctx, conn, n, n.DDLGuard, say); err != nil {
		return err
	}
	var plugin, slotDB *string
	err = conn.QueryRow(ctx, "SELECT plugin, database FROM pg_replication_slots WHERE slot_name = $1", n.Slot).Scan(&plugin, &slotDB)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if err := createSlot(ctx, conn, n, major, say); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("setup: %w", explain(err))
	case plugin == nil || *plugin != "pgoutput":
		return fmt.Errorf("setup: replication slot %s exists but is not a pgoutput logical slot", n.Slot)
	case slotDB != nil && *slotDB != conn.Config().Database:
		return fmt.Errorf("setup: replication slot %s exists in database %s, not %s (slot names are per server): set postgres.slot to another name", n.Slot, *slotDB, conn.Config().Database)
	default:
		// A lost slot is not recreated here: that would skip the rows after
		// its last confirmed position without a word. The error says how.
		if err := checkSlotUsable(ctx, conn, n.Slot); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		if err := ensureFailover(ctx, conn, n, major, say); err != nil {
			return err
		}
		say("replication slot " + n.Slot + " is ready")
	}
	return nil
}

// Check verifies, before streaming, everything a clear message can be given
// for: wal_level, the server encoding (pgconn.UseUTF8), the REPLICATION privilege,
// the publication, the slot and the outbox tables (by the identity setup
// recorded, see Outboxes). warn receives findings that do not stop a start.
func Check(ctx context.Context, conn *pgx.Conn, n Names, warn func(string)) error {
	major, err := ServerVersion(ctx, conn)
	if err != nil {
		return err
	}
	if err := checkPrimary(ctx, conn, major); err != nil {
		return err
	}
	if err := checkWALLevel(ctx, conn); err != nil {
		return err
	}
	if _, err := pgc.UseUTF8(ctx, conn); err != nil {
		return err
	}
	var role string
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT current_user, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&role, &ok); err != nil {
		return fmt.Errorf("postgres: %w", explain(err))
	}
	if !ok {
		return fmt.Errorf("postgres: role %q lacks the REPLICATION attribute needed to stream a slot: ALTER ROLE %s WITH REPLICATION", role, pgx.Identifier{role}.Sanitize())
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", n.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: %w", explain(err))
	}
	if !exists {
		// Dropped while setup's record says it streamed the outbox: drift.
		if ids, err := LoadIdentities(ctx, conn, n); err == nil && len(ids) > 0 {
			return Judge(Outbox{Name: ids[0].Table, OID: ids[0].OID}, Inspection{Name: ids[0].Table}, n.Publication, "")
		}
		return fmt.Errorf("postgres: publication %q does not exist: run `outbox-cdc setup`", n.Publication)
	}
	var plugin, db string
	err = conn.QueryRow(ctx, "SELECT plugin, coalesce(database, '') FROM pg_replication_slots WHERE slot_name = $1", n.Slot).Scan(&plugin, &db)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: replication slot %q does not exist: run `outbox-cdc setup`", n.Slot)
	}
	if err != nil {
		return fmt.Errorf("postgres: %w", explain(err))
	}
	if plugin != "pgoutput" {
		return fmt.Errorf("postgres: replication slot %q uses plugin %q; outbox-cdc needs a pgoutput slot", n.Slot, plugin)
	}
	if cur := conn.Config().Database; db != cur {
		return fmt.Errorf("postgres: replication slot %q belongs to database %q, not %q", n.Slot, db, cur)
	}
	if err := checkSlotUsable(ctx, conn, n.Slot); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if _, _, err = Outboxes(ctx, conn, n, warn); err != nil {
		return err
	}
	ws, err := versionWarnings(ctx, conn, n, major)
	for _, w := range ws {
		warn(w)
	}
	return err
}

// Teardown drops the slot, the record of the outbox tables' identities for
// it, the DDL guard (when no other slot uses it) and the publication. The
// outbox tables and their rows stay. A slot that is being streamed cannot be
// dropped.
func Teardown(ctx context.Context, conn *pgx.Conn, n Names, say func(string)) error {
	var active bool
	var pid *int32
	err := conn.QueryRow(ctx, "SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = $1", n.Slot).Scan(&active, &pid)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		say("replication slot " + n.Slot + " does not exist")
	case err != nil:
		return fmt.Errorf("teardown: %w", explain(err))
	case active:
		p := int32(0)
		if pid != nil {
			p = *pid
		}
		return fmt.Errorf("teardown: replication slot %s is in use by process %d: stop outbox-cdc first", n.Slot, p)
	default:
		if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", n.Slot); err != nil {
			return fmt.Errorf("teardown: drop replication slot %s: %w", n.Slot, explain(err))
		}
		say("replication slot " + n.Slot + " dropped")
	}
	if _, err := conn.Exec(ctx, "DELETE FROM "+quoteQualified(n.ProgressTable())+" WHERE slot = $1", n.Slot); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42P01" { // the table may not exist
			return fmt.Errorf("teardown: forget sink progress: %w", explain(err))
		}
	}
	if err := removeGuard(ctx, conn, n, say); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{n.Publication}.Sanitize()); err != nil {
		return fmt.Errorf("teardown: drop publication %s: %w", n.Publication, explain(err))
	}
	say("publication " + n.Publication + " dropped; outbox tables were left in place")
	return nil
}

// CheckDeadLetter verifies the dead-letter table exists and has the layout
// this version writes (setup upgrades a table made by an earlier version).
func CheckDeadLetter(ctx context.Context, conn *pgx.Conn, table string) error {
	var exists, current bool
	err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL,
		coalesce((SELECT atttypid = 'bytea'::regtype FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'event' AND NOT attisdropped), false)
		AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'tx_position' AND NOT attisdropped)`,
		quoteQualified(table)).Scan(&exists, &current)
	if err != nil {
		return fmt.Errorf("postgres: %w", explain(err))
	}
	if !exists {
		return fmt.Errorf("postgres: dead-letter table %s does not exist: run `outbox-cdc setup`", table)
	}
	if !current {
		return fmt.Errorf("postgres: dead-letter table %s was made by an earlier version of outbox-cdc: run `outbox-cdc setup` to upgrade it (its letters are kept)", table)
	}
	return nil
}

func checkWALLevel(ctx context.Context, conn *pgx.Conn) error {
	var level string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
		return fmt.Errorf("postgres: %w", explain(err))
	}
	if level != "logical" {
		return fmt.Errorf("postgres: wal_level is %q but logical replication needs wal_level = logical: set it in postgresql.conf (or run ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL", level)
	}
	return nil
}

func tableExists(ctx context.Context, conn *pgx.Conn, table string) error {
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", quoteQualified(table)).Scan(&ok); err != nil {
		return fmt.Errorf("postgres: %w", explain(err))
	}
	if !ok {
		return fmt.Errorf("postgres: outbox table %s does not exist: run `outbox-cdc setup` (or create it as in internal/schema/outbox.sql)", table)
	}
	return nil
}

// explain adds advice to common server errors.
func explain(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return fmt.Errorf("%w (the role lacks a privilege: %s lists what each role needs, and `outbox-cdc setup --print-sql` prints the GRANTs)", err, SecurityDoc)
	}
	return err
}
