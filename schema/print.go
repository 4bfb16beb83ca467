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
	p("END $outbox_cdc$;\n")

	p("\n-- Privileges.\n")
	for _, g := range grants(n, a) {
		p("-- %s\n%s;\n", g.what, g.sql)
	}

	p("\n-- The replication slot, last and in its own transaction. It keeps WAL until\n")
	p("-- outbox-cdc confirms it: drop it (`outbox-cdc teardown --yes`) when removing outbox-cdc.\n")
	p("SELECT pg_catalog.pg_create_logical_replication_slot(%s, 'pgoutput')\n", quoteLiteral(n.Slot))
	p("WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = %s);\n", quoteLiteral(n.Slot))
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
