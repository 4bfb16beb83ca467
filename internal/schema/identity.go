package schema

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed tables.sql
var tablesSQL string

//go:embed guard.sql
var guardSQL string

var (
	tablesTmpl = template.Must(template.New("tables.sql").Parse(tablesSQL))
	guardTmpl  = template.Must(template.New("guard.sql").Parse(guardSQL))
)

// DDL guard modes (postgres.ddl_guard).
const (
	// GuardAuto installs the guard when the role may (a superuser) and
	// otherwise relies on detection. The default.
	GuardAuto = "auto"
	// GuardOn installs the guard or fails.
	GuardOn = "on"
	// GuardOff installs nothing and leaves this slot's tables unguarded.
	GuardOff = "off"
)

// The guard's event triggers (names are per database).
const (
	GuardTriggerDDL  = "outbox_cdc_guard_ddl"
	GuardTriggerDrop = "outbox_cdc_guard_drop"
)

// AllowDDLSetting is the session setting that lets the DDL guard pass a
// command on purpose: SET outbox_cdc.allow_ddl = on.
const AllowDDLSetting = "outbox_cdc.allow_ddl"

// DDLMessagePrefix is the prefix of the transactional logical message the
// guard writes when a change is let through on purpose; it is never
// published.
const DDLMessagePrefix = "outbox-cdc.ddl"

// TablesTable is the record of the outbox tables' identities:
// outbox_cdc_tables in the dead-letter table's schema.
func (n Names) TablesTable() string {
	schema, _, _ := strings.Cut(n.deadLetter(), ".")
	return schema + ".outbox_cdc_tables"
}

func (n Names) guardFunction() string {
	schema, _, _ := strings.Cut(n.deadLetter(), ".")
	return schema + ".outbox_cdc_guard"
}

// Identity is one recorded identity of a configured outbox table.
type Identity struct {
	Table      string   // the configured schema.table
	OID        uint32   // the table's OID when setup recorded it
	Membership []string // how it was in the publication (see Inspection.Membership)
	Guarded    bool
	Current    bool // false for an earlier identity (the table was recreated)
}

// LoadIdentities returns the identities recorded for slot, current ones
// first. It returns nil, nil when setup never created the record.
func LoadIdentities(ctx context.Context, conn *pgx.Conn, n Names) ([]Identity, error) {
	rows, err := conn.Query(ctx, `SELECT table_name, table_oid, membership, guarded, current FROM `+quoteQualified(n.TablesTable())+`
		WHERE slot = $1 ORDER BY current DESC, adopted_at DESC`, n.Slot)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
			return nil, nil
		}
		return nil, fmt.Errorf("postgres: read %s: %w", n.TablesTable(), explain(err))
	}
	ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Identity, error) {
		var id Identity
		err := r.Scan(&id.Table, &id.OID, &id.Membership, &id.Guarded, &id.Current)
		return id, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: read %s: %w", n.TablesTable(), explain(err))
	}
	return ids, nil
}

// Inspection is what the server's catalog says now about one outbox table.
type Inspection struct {
	// Name is the current schema.table of the inspected OID; "" when no
	// relation has that OID any more.
	Name string
	// ByName is the OID of the relation the configured name resolves to
	// now, 0 when none; ByNameKind is its relkind ('r', 'p', ...).
	ByName     uint32
	ByNameKind string
	// PubOID is the publication's OID, 0 when it does not exist.
	PubOID     uint32
	PubInsert  bool
	PubViaRoot bool
	// Membership lists how the inspected table is in the publication, as
	// catalog row identities: "rel:<pg_publication_rel oid>" (the table or
	// an ancestor partitioned table listed), "ns:<pg_publication_namespace
	// oid>" (its schema listed), "all:<publication oid>" (FOR ALL TABLES).
	// Empty: not in the publication. A membership that was removed and
	// added back has new identities.
	Membership []string
	// Filtered: a row filter or column list applies to the table.
	Filtered bool
}

// Target names one table to inspect: the OID outbox-cdc knows it by (0 for
// none) and its configured schema.table.
type Target struct {
	OID  uint32
	Name string
}

// Inspect reads pg_current_wal_lsn() and then, in later snapshots of the same
// round trip, the catalog facts of each target. Every change committed before
// the returned LSN is visible to the catalog reads, so if they show the
// tables in the publication as before, rows committed before that LSN were
// written while they were.
func Inspect(ctx context.Context, conn *pgx.Conn, publication string, targets []Target) (uint64, []Inspection, error) {
	q := inspectSQL(serverMajor(conn))
	b := &pgx.Batch{}
	b.Queue("SELECT pg_current_wal_lsn()::text")
	for _, t := range targets {
		schema, name, _ := strings.Cut(t.Name, ".")
		b.Queue(q, publication, t.OID, schema, name)
	}
	res := conn.SendBatch(ctx, b)
	defer res.Close()
	var lsnText string
	if err := res.QueryRow().Scan(&lsnText); err != nil {
		return 0, nil, fmt.Errorf("postgres: read pg_current_wal_lsn(): %w", explain(err))
	}
	lsn, err := pglogrepl.ParseLSN(lsnText)
	if err != nil {
		return 0, nil, fmt.Errorf("postgres: pg_current_wal_lsn() %q: %w", lsnText, err)
	}
	out := make([]Inspection, len(targets))
	for i := range targets {
		var name *string
		in := &out[i]
		if err := res.QueryRow().Scan(&name, &in.ByName, &in.ByNameKind, &in.PubOID, &in.PubInsert, &in.PubViaRoot, &in.Membership, &in.Filtered); err != nil {
			return 0, nil, fmt.Errorf("postgres: inspect outbox table %s: %w", targets[i].Name, explain(err))
		}
		if name != nil {
			in.Name = *name
		}
	}
	return uint64(lsn), out, res.Close()
}

// inspectSQL returns the inspection query; PostgreSQL 15 added schema
// membership (FOR TABLES IN SCHEMA), row filters and column lists.
func inspectSQL(major int) string {
	ns, filter := "", "false"
	if major >= 15 {
		ns = `
        UNION ALL SELECT 'ns:' || pn.oid FROM pg_catalog.pg_publication_namespace pn, p, pg_catalog.pg_class c
                  WHERE pn.pnpubid = p.oid AND c.relnamespace = pn.pnnspid AND c.oid IN (SELECT relid FROM t)`
		filter = `EXISTS (SELECT 1 FROM pg_catalog.pg_publication_rel pr, p WHERE pr.prpubid = p.oid
                  AND pr.prrelid IN (SELECT relid FROM t) AND (pr.prqual IS NOT NULL OR pr.prattrs IS NOT NULL))`
	}
	return `
WITH t AS (SELECT $2::oid AS relid WHERE $2::oid <> 0
           UNION SELECT relid FROM pg_catalog.pg_partition_ancestors($2::oid::regclass) WHERE $2::oid <> 0),
     p AS (SELECT oid, pubinsert, pubviaroot, puballtables FROM pg_catalog.pg_publication WHERE pubname = $1),
     byname AS (SELECT c.oid, c.relkind::text AS kind FROM pg_catalog.pg_class c
                JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $3 AND c.relname = $4)
SELECT (SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $2::oid),
       coalesce((SELECT oid FROM byname), 0)::oid,
       coalesce((SELECT kind FROM byname), ''),
       coalesce((SELECT oid FROM p), 0)::oid,
       coalesce((SELECT pubinsert FROM p), false),
       coalesce((SELECT pubviaroot FROM p), false),
       ARRAY(SELECT 'all:' || p.oid FROM p WHERE p.puballtables
             UNION ALL SELECT 'rel:' || pr.oid FROM pg_catalog.pg_publication_rel pr, p
                       WHERE pr.prpubid = p.oid AND pr.prrelid IN (SELECT relid FROM t)` + ns + `),
       ` + filter
}

// serverMajor returns the server's major version (14, 15, ...).
func serverMajor(conn *pgx.Conn) int {
	v := conn.PgConn().ParameterStatus("server_version")
	f := strings.FieldsFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// DriftError says that an outbox table is no longer streamed as outbox-cdc
// streamed it: it left the publication, was dropped, recreated or replaced,
// or the publication changed. Rows written since were not in the slot's
// stream; the error says what to do.
type DriftError struct {
	Table       string // the configured schema.table
	Publication string
	What        string // what happened, starting with a verb
	Fix         string // what to do
}

func (e *DriftError) Error() string {
	return "outbox table " + e.Table + " " + e.What + ": " + e.Fix
}

// Permanent reports true: reconnecting cannot bring the rows back into the
// stream; the error says what to do (see sink.IsPermanent).
func (e *DriftError) Permanent() bool { return true }

// Outbox is one configured outbox table as outbox-cdc streams it.
type Outbox struct {
	Name string // the configured schema.table
	OID  uint32 // its identity now
	// Known lists every OID recorded for it, OID first: WAL written before
	// the table was recreated still carries the older ones.
	Known []uint32
	// Membership is how it is in the publication (Inspection.Membership).
	Membership []string
	// Current is its current schema.table (differs from Name after a
	// rename that outbox-cdc followed).
	Current string
	// Recorded tells whether setup recorded its identity.
	Recorded bool
}

// Judge compares what the catalog says now (in) with the table as outbox-cdc
// streams it (o) and returns a *DriftError when rows written to it may have
// been missed by the stream. A rename alone is not drift: the caller decides
// (a running stream follows it, a start-up refuses it). backfill says what to
// re-send, e.g. "since 2026-11-30T10:00:00Z".
func Judge(o Outbox, in Inspection, publication, backfill string) *DriftError {
	d := &DriftError{Table: o.Name, Publication: publication}
	resend := "then re-send the rows written meanwhile with `outbox-cdc backfill`"
	if backfill != "" {
		resend = "then re-send the rows written " + backfill + " with `outbox-cdc backfill`"
	}
	switch {
	case in.Name == "" && in.ByName != 0:
		d.What = fmt.Sprintf("is not the table outbox-cdc streamed: that table (OID %d) was dropped, and %s is now a new table (OID %d) that is not streamed through publication %s",
			o.OID, o.Name, in.ByName, publication)
		d.Fix = "run `outbox-cdc setup` to stream the new table, " + resend
	case in.Name == "":
		d.What = fmt.Sprintf("(OID %d) was dropped, and with it left publication %s", o.OID, publication)
		d.Fix = "create it again and run `outbox-cdc setup`, " + resend
	case in.ByName != 0 && in.ByName != o.OID:
		d.What = fmt.Sprintf("is not the table outbox-cdc streamed: that table (OID %d) is now called %s, and %s is another table (OID %d) whose rows are not streamed through publication %s",
			o.OID, in.Name, o.Name, in.ByName, publication)
		d.Fix = "rename the tables back, or run `outbox-cdc setup` to stream the new one; " + resend
	case in.PubOID == 0:
		d.What = fmt.Sprintf("is no longer streamed: publication %s was dropped", publication)
		d.Fix = "run `outbox-cdc setup` to create it again, " + resend
	case !in.PubInsert:
		d.What = fmt.Sprintf("is no longer streamed: publication %s does not publish inserts", publication)
		d.Fix = fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert') or run `outbox-cdc setup`, ", pgx.Identifier{publication}.Sanitize()) + resend
	case len(in.Membership) == 0:
		d.What = fmt.Sprintf("is not in publication %s: rows written to it are not in the replication slot's stream", publication)
		d.Fix = "add it back with `outbox-cdc setup`, " + resend
	case len(o.Membership) > 0 && !slices.ContainsFunc(in.Membership, func(m string) bool { return slices.Contains(o.Membership, m) }):
		d.What = fmt.Sprintf("left publication %s and was added back: rows written in between are not in the replication slot's stream", publication)
		d.Fix = "run `outbox-cdc setup` to accept the publication as it is now, " + resend
	case in.Filtered:
		d.What = fmt.Sprintf("has a row filter or column list in publication %s: rows or columns it leaves out are never streamed", publication)
		d.Fix = fmt.Sprintf("remove it (ALTER PUBLICATION %s SET TABLE ... without WHERE or column list), ", pgx.Identifier{publication}.Sanitize()) + resend
	default:
		return nil
	}
	return d
}

// Outboxes resolves the configured outbox tables by the identities setup
// recorded and checks each against the server: it is the table setup
// recorded, still under its configured name, and in the publication as it
// was. It returns the tables and the WAL position at which that was
// verified, or a *DriftError (or another named error). warn receives
// findings that do not stop a start.
func Outboxes(ctx context.Context, conn *pgx.Conn, n Names, warn func(string)) ([]Outbox, uint64, error) {
	ids, err := LoadIdentities(ctx, conn, n)
	if err != nil {
		return nil, 0, err
	}
	outs := make([]Outbox, len(n.Tables))
	targets := make([]Target, len(n.Tables))
	for i, t := range n.Tables {
		o := Outbox{Name: t, Current: t}
		for _, id := range ids {
			if id.Table != t {
				continue
			}
			if id.Current && !o.Recorded {
				o.OID, o.Membership, o.Recorded = id.OID, id.Membership, true
			}
			o.Known = append(o.Known, id.OID)
		}
		outs[i], targets[i] = o, Target{OID: o.OID, Name: t}
	}
	// Tables setup did not record are known by name for now.
	var unrecorded []string
	for i := range outs {
		if !outs[i].Recorded {
			unrecorded = append(unrecorded, outs[i].Name)
		}
	}
	if len(unrecorded) > 0 {
		_, ins, err := Inspect(ctx, conn, n.Publication, targets)
		if err != nil {
			return nil, 0, err
		}
		for i := range outs {
			if outs[i].Recorded {
				continue
			}
			if ins[i].ByName == 0 {
				return nil, 0, fmt.Errorf("postgres: outbox table %s does not exist: run `outbox-cdc setup` (or create it as in internal/schema/outbox.sql)", outs[i].Name)
			}
			outs[i].OID = ins[i].ByName
			outs[i].Known = append([]uint32{ins[i].ByName}, outs[i].Known...)
			targets[i].OID = ins[i].ByName
		}
		warn(fmt.Sprintf("the identity of outbox table %s is not recorded: run `outbox-cdc setup` so that outbox-cdc can tell a renamed or recreated outbox after a restart", strings.Join(unrecorded, ", ")))
	}
	lsn, ins, err := Inspect(ctx, conn, n.Publication, targets)
	if err != nil {
		return nil, 0, err
	}
	for i, o := range outs {
		in := ins[i]
		if in.Name != "" && in.Name != o.Name && in.ByName == 0 {
			return nil, 0, &DriftError{Table: o.Name, Publication: n.Publication,
				What: fmt.Sprintf("was renamed to %s (OID %d) while outbox-cdc was stopped", in.Name, o.OID),
				Fix: fmt.Sprintf("rename it back (ALTER TABLE %s RENAME TO %s), or set outbox.tables[].name to %s and run `outbox-cdc setup`",
					quoteQualified(in.Name), pgx.Identifier{tableOnly(o.Name)}.Sanitize(), in.Name)}
		}
		if d := Judge(o, in, n.Publication, ""); d != nil {
			if in.Name == "" && in.ByName == 0 {
				d.What = fmt.Sprintf("does not exist: the table outbox-cdc streamed (OID %d) was dropped", o.OID)
			}
			return nil, 0, d
		}
		outs[i].Membership = in.Membership
		outs[i].Current = in.Name
	}
	return outs, lsn, nil
}

func tableOnly(qualified string) string {
	_, t, _ := strings.Cut(qualified, ".")
	return t
}

// recordOutboxes makes the publication cover every outbox table by OID
// (partitioned ones through their root, publish_via_partition_root), then
// records each table's identity and membership for run and the guard.
func recordOutboxes(ctx context.Context, conn *pgx.Conn, n Names, guarded bool, say func(string)) error {
	var sql strings.Builder
	if err := tablesTmpl.Execute(&sql, map[string]string{"Table": quoteQualified(n.TablesTable())}); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, sql.String()); err != nil {
		return fmt.Errorf("setup: create %s: %w", n.TablesTable(), explain(err))
	}
	ids, err := LoadIdentities(ctx, conn, n)
	if err != nil {
		return err
	}
	targets := make([]Target, len(n.Tables))
	for i, t := range n.Tables {
		targets[i] = Target{Name: t}
	}
	_, byName, err := Inspect(ctx, conn, n.Publication, targets)
	if err != nil {
		return err
	}
	pub := pgx.Identifier{n.Publication}.Sanitize()
	partitioned := false
	for i, t := range n.Tables {
		in := byName[i]
		if in.ByName == 0 {
			return fmt.Errorf("postgres: outbox table %s does not exist: run `outbox-cdc setup` (or create it as in internal/schema/outbox.sql)", t)
		}
		partitioned = partitioned || in.ByNameKind == "p"
	}
	// Re-read with the OIDs: membership by OID, partitions through their root.
	for i := range targets {
		targets[i].OID = byName[i].ByName
	}
	_, ins, err := Inspect(ctx, conn, n.Publication, targets)
	if err != nil {
		return err
	}
	changed := false
	for i, t := range n.Tables {
		if len(ins[i].Membership) == 0 {
			if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s", pub, quoteQualified(t))); err != nil {
				return fmt.Errorf("setup: add %s to publication %s: %w", t, n.Publication, explain(err))
			}
			say("table " + t + " added to publication " + n.Publication)
			changed = true
		}
	}
	if len(ins) > 0 && !ins[0].PubInsert {
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert')", pub)); err != nil {
			return fmt.Errorf("setup: make publication %s publish inserts: %w", n.Publication, explain(err))
		}
		say("publication " + n.Publication + " publishes inserts again")
		changed = true
	}
	if partitioned && len(ins) > 0 && !ins[0].PubViaRoot {
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER PUBLICATION %s SET (publish_via_partition_root = true)", pub)); err != nil {
			return fmt.Errorf("setup: set publish_via_partition_root on publication %s: %w", n.Publication, explain(err))
		}
		say("publication " + n.Publication + " publishes partitions as their partitioned outbox table (publish_via_partition_root)")
		changed = true
	}
	if changed {
		if _, ins, err = Inspect(ctx, conn, n.Publication, targets); err != nil {
			return err
		}
	}
	for i, t := range n.Tables {
		in, oid := ins[i], targets[i].OID
		if in.Filtered {
			return fmt.Errorf("setup: publication %s has a row filter or column list on outbox table %s: rows or columns it leaves out are never streamed; remove it (ALTER PUBLICATION %s SET TABLE ...)", n.Publication, t, pub)
		}
		var cur *Identity
		for j := range ids {
			if ids[j].Table == t && ids[j].Current {
				cur = &ids[j]
				break
			}
		}
		switch {
		case cur != nil && cur.OID != oid:
			say(fmt.Sprintf("outbox table %s is a new table (OID %d; outbox-cdc streamed OID %d): it is streamed from now on; rows written to it before now may not be in the replication slot: re-send them with `outbox-cdc backfill`", t, oid, cur.OID))
		case cur != nil && len(cur.Membership) > 0 && !slices.ContainsFunc(in.Membership, func(m string) bool { return slices.Contains(cur.Membership, m) }):
			say(fmt.Sprintf("outbox table %s left publication %s and is in it again: accepted; rows written while it was out are not in the replication slot: re-send them with `outbox-cdc backfill`", t, n.Publication))
		}
		tbl := quoteQualified(n.TablesTable())
		_, err := conn.Exec(ctx, `WITH retired AS (
	UPDATE `+tbl+` SET current = false WHERE slot = $1 AND table_name = $2 AND table_oid <> $3 AND current)
INSERT INTO `+tbl+` AS r (slot, table_name, table_oid, publication, membership, guarded)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (slot, table_oid) DO UPDATE SET table_name = EXCLUDED.table_name, publication = EXCLUDED.publication,
	membership = EXCLUDED.membership, guarded = EXCLUDED.guarded, current = true,
	adopted_at = CASE WHEN r.current THEN r.adopted_at ELSE now() END,
	adopted_lsn = CASE WHEN r.current THEN r.adopted_lsn ELSE pg_current_wal_lsn() END`,
			n.Slot, t, oid, n.Publication, in.Membership, guarded)
		if err != nil {
			return fmt.Errorf("setup: record outbox table %s: %w", t, explain(err))
		}
	}
	return nil
}

// checkRenamedAway refuses to set up an outbox table beside the one
// outbox-cdc streamed when that one was renamed and is still in the
// publication: both would stream, and setup would create a new, empty outbox
// under the configured name.
func checkRenamedAway(ctx context.Context, conn *pgx.Conn, n Names) error {
	ids, err := LoadIdentities(ctx, conn, n)
	if err != nil || len(ids) == 0 {
		return err
	}
	for _, t := range n.Tables {
		for _, id := range ids {
			if id.Table != t || !id.Current {
				continue
			}
			_, in, err := Inspect(ctx, conn, n.Publication, []Target{{OID: id.OID, Name: t}})
			if err != nil {
				return err
			}
			if in[0].Name != "" && in[0].Name != t && len(in[0].Membership) > 0 {
				return fmt.Errorf("setup: outbox table %s was renamed to %s (OID %d), which is still in publication %s. Rename it back (ALTER TABLE %s RENAME TO %s), set outbox.tables[].name to %s, or take it out of the publication (ALTER PUBLICATION %s DROP TABLE %s, after SET %s = on if the DDL guard refuses) and run setup again",
					t, in[0].Name, id.OID, n.Publication, quoteQualified(in[0].Name), pgx.Identifier{tableOnly(t)}.Sanitize(), in[0].Name,
					pgx.Identifier{n.Publication}.Sanitize(), quoteQualified(in[0].Name), AllowDDLSetting)
			}
		}
	}
	return nil
}

// installGuard installs the DDL guard when mode and the role allow it.
func installGuard(ctx context.Context, conn *pgx.Conn, n Names, mode string, say func(string)) error {
	if mode == GuardOff {
		say("DDL guard off (postgres.ddl_guard: off): outbox-cdc detects an outbox table renamed away, dropped or taken out of publication " + n.Publication + " and stops with a named error")
		return nil
	}
	var super bool
	var role string
	if err := conn.QueryRow(ctx, "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&role, &super); err != nil {
		return fmt.Errorf("setup: %w", explain(err))
	}
	if !super {
		var installed bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = $1)", GuardTriggerDDL).Scan(&installed); err != nil {
			return fmt.Errorf("setup: %w", explain(err))
		}
		switch {
		case installed:
			say("DDL guard is installed")
		case mode == GuardOn:
			return fmt.Errorf("setup: postgres.ddl_guard is on, but role %q cannot install it: CREATE EVENT TRIGGER needs a superuser. Run setup once as a superuser, or set postgres.ddl_guard: auto to rely on detection (outbox-cdc stops with a named error instead)", role)
		default:
			say("DDL guard not installed: CREATE EVENT TRIGGER needs a superuser (run setup once as one to install it); outbox-cdc still detects an outbox table renamed away, dropped or taken out of publication " + n.Publication + " and stops with a named error")
		}
		return nil
	}
	var sql strings.Builder
	if err := guardTmpl.Execute(&sql, map[string]string{
		"Table":    quoteQualified(n.TablesTable()),
		"Function": quoteQualified(n.guardFunction()),
	}); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, sql.String()); err != nil {
		return fmt.Errorf("setup: install the DDL guard: %w", explain(err))
	}
	say("DDL guard installed: while slot " + n.Slot + " exists, PostgreSQL refuses to rename or drop an outbox table or take it out of publication " + n.Publication + " (SET " + AllowDDLSetting + " = on to do it on purpose)")
	return nil
}

// removeGuard forgets slot's tables and drops the guard when no slot uses it
// any more.
func removeGuard(ctx context.Context, conn *pgx.Conn, n Names, say func(string)) error {
	var left bool
	err := conn.QueryRow(ctx, `WITH gone AS (DELETE FROM `+quoteQualified(n.TablesTable())+` WHERE slot = $1 RETURNING 1)
		SELECT EXISTS (SELECT 1 FROM `+quoteQualified(n.TablesTable())+` WHERE slot <> $1)`, n.Slot).Scan(&left)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		left = false
	} else if err != nil {
		return fmt.Errorf("teardown: forget the outbox tables' identities: %w", explain(err))
	}
	if left {
		return nil // another slot's tables are still guarded
	}
	var installed bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname IN ($1, $2))", GuardTriggerDDL, GuardTriggerDrop).Scan(&installed); err != nil {
		return fmt.Errorf("teardown: %w", explain(err))
	}
	if !installed {
		return nil
	}
	_, err = conn.Exec(ctx, "DROP EVENT TRIGGER IF EXISTS "+GuardTriggerDDL+"; DROP EVENT TRIGGER IF EXISTS "+GuardTriggerDrop+
		"; DROP FUNCTION IF EXISTS "+quoteQualified(n.guardFunction())+"()")
	if err != nil {
		say(fmt.Sprintf("DDL guard left installed (%v); it ignores slots that no longer exist. A superuser can remove it: DROP EVENT TRIGGER %s; DROP EVENT TRIGGER %s",
			explain(err), GuardTriggerDDL, GuardTriggerDrop))
		return nil
	}
	say("DDL guard removed")
	return nil
}
