package schema

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"
)

// PrintSQL writes, without connecting, the SQL that `setup` would run plus
// every GRANT of a, for a DBA to review and run by hand:
//
//	psql -v ON_ERROR_STOP=1 -d DATABASE -f outbox-cdc.sql
//
// as a superuser (the lockdown of pg_logical_emit_message and the
// REPLICATION attribute need one). Every statement is idempotent. Run it
// statement by statement (psql's default), not in one transaction: the slot
// cannot be created in a transaction that wrote. With createTables false the
// outbox tables are left out (setup --skip-tables).
func PrintSQL(w io.Writer, n Names, a Access, createTables bool) error {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("-- outbox-cdc setup, printed by `outbox-cdc setup --print-sql` (see %s).\n", SecurityDoc)
	p("-- Run it in the outbox's database as a superuser, one statement per transaction:\n")
	p("--   psql -v ON_ERROR_STOP=1 -d DATABASE -f outbox-cdc.sql\n")
	p("-- The server needs wal_level = logical. The roles named below must exist;\n")
	p("-- the objects are owned by the role that runs this. Every statement is idempotent.\n")
	if a.Stream != "" {
		p("-- Streaming role (`outbox-cdc run`): %s\n", a.Stream)
	}
	if len(a.Writers) > 0 {
		p("-- Writer roles (applications): %s\n", strings.Join(a.Writers, ", "))
	}
	if createTables {
		for _, t := range n.Tables {
			sql, err := OutboxSQL(t)
			if err != nil {
				return err
			}
			p("\n-- Outbox table %s and its helper function.\n%s\n", t, strings.TrimSpace(stripComments(sql)))
		}
	}
	dl, err := DeadLetterSQL(n.deadLetter())
	if err != nil {
		return err
	}
	p("\n-- Dead-letter table.\n%s\n", strings.TrimSpace(stripComments(dl)))
	var pb bytes.Buffer
	if err := progressTmpl.Execute(&pb, map[string]string{"Table": quoteQualified(n.ProgressTable())}); err != nil {
		return err
	}
	p("\n-- Per-sink progress table.\n%s\n", strings.TrimSpace(stripComments(pb.String())))

	p("\n-- Publication %s: inserts into the outbox tables.\n", n.Publication)
	pub := pgx.Identifier{n.Publication}.Sanitize()
	quoted := make([]string, len(n.Tables))
	for i, t := range n.Tables {
		quoted[i] = quoteQualified(t)
	}
	p("DO $outbox_cdc$ BEGIN\n")
	p("  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = %s) THEN\n", quoteLiteral(n.Publication))
	p("    CREATE PUBLICATION %s FOR TABLE %s WITH (publish = 'insert');\n", pub, strings.Join(quoted, ", "))
	p("  END IF;\n")
	for _, t := range n.Tables {
		schema, name, _ := strings.Cut(t, ".")
		p("  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables WHERE pubname = %s AND schemaname = %s AND tablename = %s) THEN\n",
			quoteLiteral(n.Publication), quoteLiteral(schema), quoteLiteral(name))
		p("    ALTER PUBLICATION %s ADD TABLE %s;\n", pub, quoteQualified(t))
		p("  END IF;\n")
	}
	p("  -- A partitioned outbox is streamed as its partitioned table.\n")
	p("  IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid IN (%s) AND relkind = 'p')\n", regclasses(n.Tables))
	p("     AND NOT (SELECT pubviaroot FROM pg_catalog.pg_publication WHERE pubname = %s) THEN\n", quoteLiteral(n.Publication))
	p("    ALTER PUBLICATION %s SET (publish_via_partition_root = true);\n", pub)
	p("  END IF;\n")
	p("END $outbox_cdc$;\n")

	// The record of the tables' identities, as setup writes it: run checks
	// the outbox by these OIDs, and the DDL guard reads it.
	guarded := n.DDLGuard != GuardOff
	var tb strings.Builder
	if err := tablesTmpl.Execute(&tb, map[string]string{"Table": quoteQualified(n.TablesTable())}); err != nil {
		return err
	}
	p("\n-- The outbox tables' identities (by OID), read by `outbox-cdc run` and the DDL guard.\n%s\n", strings.TrimSpace(stripComments(tb.String())))
	for _, t := range n.Tables {
		p("DO $outbox_cdc$ DECLARE m text[]; BEGIN\n")
		p("  m := ARRAY(SELECT 'all:' || p.oid FROM pg_catalog.pg_publication p WHERE p.pubname = %s AND p.puballtables\n", quoteLiteral(n.Publication))
		p("        UNION ALL SELECT 'rel:' || pr.oid FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid\n")
		p("                  WHERE p.pubname = %s AND pr.prrelid IN (SELECT %s::regclass UNION SELECT relid FROM pg_catalog.pg_partition_ancestors(%s::regclass)));\n",
			quoteLiteral(n.Publication), quoteLiteral(quoteQualified(t)), quoteLiteral(quoteQualified(t)))
		p("  IF current_setting('server_version_num')::int >= 150000 THEN\n")
		p("    m := m || ARRAY(SELECT 'ns:' || pn.oid FROM pg_catalog.pg_publication_namespace pn JOIN pg_catalog.pg_publication p ON p.oid = pn.pnpubid\n")
		p("                    WHERE p.pubname = %s AND pn.pnnspid = (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = %s::regclass));\n",
			quoteLiteral(n.Publication), quoteLiteral(quoteQualified(t)))
		p("  END IF;\n")
		p("  INSERT INTO %s AS r (slot, table_name, table_oid, publication, membership, guarded)\n", quoteQualified(n.TablesTable()))
		p("  VALUES (%s, %s, %s::regclass::oid, %s, m, %t)\n", quoteLiteral(n.Slot), quoteLiteral(t), quoteLiteral(quoteQualified(t)), quoteLiteral(n.Publication), guarded)
		p("  ON CONFLICT (slot, table_oid) DO UPDATE SET table_name = EXCLUDED.table_name, publication = EXCLUDED.publication,\n")
		p("    membership = EXCLUDED.membership, guarded = EXCLUDED.guarded, current = true;\n")
		p("END $outbox_cdc$;\n")
	}
	if guarded {
		var gb strings.Builder
		if err := guardTmpl.Execute(&gb, map[string]string{
			"Table":    quoteQualified(n.TablesTable()),
			"Function": quoteQualified(n.guardFunction()),
		}); err != nil {
			return err
		}
		p("\n-- The DDL guard (needs a superuser; postgres.ddl_guard: off leaves it out): while the\n")
		p("-- slot exists, refuses to rename or drop an outbox table or take it out of the publication.\n")
		p("%s\n", strings.TrimSpace(stripComments(gb.String())))
	}

	p("\n-- Privileges.\n")
	for _, g := range grants(n, a) {
		p("-- %s\n%s;\n", g.what, g.sql)
	}

	p("\n-- The replication slot, last and in its own transaction. It keeps WAL until\n")
	p("-- outbox-cdc confirms it: drop it (`outbox-cdc teardown --yes`) when removing outbox-cdc.\n")
	switch n.FailoverSlot {
	case FailoverOff:
		p("SELECT pg_catalog.pg_create_logical_replication_slot(%s, 'pgoutput')\n", quoteLiteral(n.Slot))
		p("WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = %s);\n", quoteLiteral(n.Slot))
	default:
		// A failover slot on PostgreSQL 17+ (postgres.failover_slot), which a
		// standby with sync_replication_slots keeps (docs/postgres-versions.md).
		older := fmt.Sprintf("PERFORM pg_catalog.pg_create_logical_replication_slot(%s, 'pgoutput');", quoteLiteral(n.Slot))
		if n.FailoverSlot == FailoverOn {
			older = fmt.Sprintf("RAISE EXCEPTION 'postgres.failover_slot is on, but PostgreSQL %%%% has no failover slots (PostgreSQL %d and newer have): upgrade, or set postgres.failover_slot: auto', current_setting('server_version');", FailoverSlotsSince)
		}
		p("-- On PostgreSQL %d and newer a failover slot, which a standby with sync_replication_slots keeps.\n", FailoverSlotsSince)
		p("DO $outbox_cdc$\nBEGIN\n")
		p("  IF EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = %s) THEN RETURN; END IF;\n", quoteLiteral(n.Slot))
		p("  IF current_setting('server_version_num')::int >= %d THEN\n", FailoverSlotsSince*10000)
		p("    PERFORM pg_catalog.pg_create_logical_replication_slot(%s, 'pgoutput', false, false, true);\n", quoteLiteral(n.Slot))
		p("  ELSE\n    %s\n  END IF;\nEND $outbox_cdc$;\n", older)
	}
	_, err = w.Write(b.Bytes())
	return err
}

// stripComments drops the whole-line "--" comments of an embedded SQL file
// (they describe the template, not the printed statement).
func stripComments(sql string) string {
	var out []string
	for _, line := range strings.Split(sql, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// regclasses lists tables as SQL regclass literals, for an IN list.
func regclasses(tables []string) string {
	out := make([]string, len(tables))
	for i, t := range tables {
		out[i] = quoteLiteral(quoteQualified(t)) + "::regclass"
	}
	return strings.Join(out, ", ")
}
