package schema

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SecurityDoc is the page that explains the role layout and the grants.
const SecurityDoc = "docs/security.md"

// Access says who may do what: the roles of the least-privilege layout
// (docs/security.md) and the features that need privileges.
type Access struct {
	// Stream is the role `run` connects as; "" means the role running setup
	// (CURRENT_USER). It gets REPLICATION, USAGE on the schemas, SELECT,
	// INSERT and UPDATE on the dead-letter and progress tables and USAGE on
	// the dead-letter id sequence, with Retention SELECT and DELETE on the
	// outbox tables (streaming itself needs none), and with Messages EXECUTE
	// on pg_logical_emit_message (the heartbeat writes one).
	Stream string
	// Writers are the application roles: USAGE on the outbox tables'
	// schemas, INSERT on the tables, SELECT on their id column (the helper
	// returns it) and EXECUTE on each <table>_publish helper, and with
	// Messages EXECUTE on pg_logical_emit_message.
	Writers []string
	// Messages: the message path is on, so pg_logical_emit_message is
	// revoked from PUBLIC and granted to Stream and Writers only.
	Messages bool
	// Retention: run deletes acknowledged outbox rows.
	Retention bool
	// IDColumns maps an outbox table to its id column; missing means "id".
	IDColumns map[string]string
}

// grant is one privilege: check (an SQL boolean expression) says whether it
// is held, sql grants it. super marks what only a superuser can do
// (pg_catalog functions, role attributes).
type grant struct {
	what, check, sql string
	super            bool
}

// role is a role name, or the current user when "".
type role string

// spec is the role in a GRANT or ALTER ROLE statement.
func (r role) spec() string {
	if r == "" {
		return "CURRENT_USER"
	}
	return pgx.Identifier{string(r)}.Sanitize()
}

// expr is the role as an SQL text expression, for has_*_privilege.
func (r role) expr() string {
	if r == "" {
		return "current_user"
	}
	return quoteLiteral(string(r))
}

func (r role) String() string {
	if r == "" {
		return "the role running setup"
	}
	return string(r)
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings
// is on in every supported server).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// emitMessageVariants selects every pg_logical_emit_message signature: the
// text and bytea variants, each with a flush argument since PostgreSQL 17.
const emitMessageVariants = `SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.proname = 'pg_logical_emit_message' AND p.pronamespace = 'pg_catalog'::regnamespace`

// publicMayEmit is true while PUBLIC may execute some variant (a NULL acl is
// the default: PUBLIC may).
const publicMayEmit = `EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.oid IN (` + emitMessageVariants + `)
  AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')))`

// grants lists every privilege a grants, in the order to apply them.
func grants(n Names, a Access) []grant {
	var out []grant
	stream := role(a.Stream)
	var writers []role
	for _, w := range a.Writers {
		writers = append(writers, role(w))
	}
	add := func(g grant) { out = append(out, g) }
	schemaOf := func(t string) string { s, _, _ := strings.Cut(t, "."); return s }
	usage := func(r role, schemas ...string) {
		seen := map[string]bool{}
		for _, s := range schemas {
			if seen[s] {
				continue
			}
			seen[s] = true
			add(grant{
				what:  fmt.Sprintf("USAGE on schema %s to %s", s, r),
				check: fmt.Sprintf("has_schema_privilege(%s, %s, 'USAGE')", r.expr(), quoteLiteral(s)),
				sql:   fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", pgx.Identifier{s}.Sanitize(), r.spec()),
			})
		}
	}
	table := func(r role, t string, privs ...string) {
		var checks []string
		for _, p := range privs {
			checks = append(checks, fmt.Sprintf("has_table_privilege(%s, %s, '%s')", r.expr(), quoteLiteral(quoteQualified(t)), p))
		}
		add(grant{
			what:  fmt.Sprintf("%s on %s to %s", strings.Join(privs, ", "), t, r),
			check: strings.Join(checks, " AND "),
			sql:   fmt.Sprintf("GRANT %s ON TABLE %s TO %s", strings.Join(privs, ", "), quoteQualified(t), r.spec()),
		})
	}

	// The streaming role.
	if a.Stream != "" {
		add(grant{
			what:  "the REPLICATION attribute to " + a.Stream,
			check: fmt.Sprintf("(SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = %s)", stream.expr()),
			sql:   "ALTER ROLE " + stream.spec() + " WITH REPLICATION",
			super: true,
		})
	}
	var schemas []string
	for _, t := range n.Tables {
		schemas = append(schemas, schemaOf(t))
	}
	schemas = append(schemas, schemaOf(n.deadLetter()), schemaOf(n.ProgressTable()))
	usage(stream, schemas...)
	if a.Retention { // streaming needs no privilege on the outbox; pruning does
		for _, t := range n.Tables {
			table(stream, t, "SELECT", "DELETE")
		}
	}
	table(stream, n.deadLetter(), "SELECT", "INSERT", "UPDATE")
	seq := fmt.Sprintf("pg_get_serial_sequence(%s, 'id')", quoteLiteral(quoteQualified(n.deadLetter())))
	add(grant{
		what:  fmt.Sprintf("USAGE on the id sequence of %s to %s", n.deadLetter(), stream),
		check: fmt.Sprintf("has_sequence_privilege(%s, %s, 'USAGE')", stream.expr(), seq),
		sql:   fmt.Sprintf("DO $outbox_cdc$ BEGIN EXECUTE format('GRANT USAGE ON SEQUENCE %%s TO %%s', %s, %s); END $outbox_cdc$", seq, quoteLiteral(stream.spec())),
	})
	table(stream, n.ProgressTable(), "SELECT", "INSERT", "UPDATE")
	table(stream, n.TablesTable(), "SELECT") // run checks the outbox tables by their recorded OIDs

	// The writers.
	for _, w := range writers {
		var ws []string
		for _, t := range n.Tables {
			ws = append(ws, schemaOf(t))
		}
		usage(w, ws...)
		for _, t := range n.Tables {
			id := a.IDColumns[t]
			if id == "" {
				id = "id"
			}
			add(grant{
				what: fmt.Sprintf("INSERT and SELECT (%s) on %s to %s", id, t, w),
				check: fmt.Sprintf("has_table_privilege(%s, %s, 'INSERT') AND has_column_privilege(%s, %s, %s, 'SELECT')",
					w.expr(), quoteLiteral(quoteQualified(t)), w.expr(), quoteLiteral(quoteQualified(t)), quoteLiteral(id)),
				sql: fmt.Sprintf("GRANT INSERT, SELECT (%s) ON TABLE %s TO %s", pgx.Identifier{id}.Sanitize(), quoteQualified(t), w.spec()),
			})
			fn := helperName(t)
			fnSchema, fnName, _ := strings.Cut(fn, ".")
			add(grant{
				what: fmt.Sprintf("EXECUTE on %s to %s", fn, w),
				// Only where the helper exists: tables not made by setup may have none.
				check: fmt.Sprintf(`NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.proname = %s AND p.pronamespace = %s::regnamespace
  AND NOT has_function_privilege(%s, p.oid, 'EXECUTE'))`, quoteLiteral(fnName), quoteLiteral(pgx.Identifier{fnSchema}.Sanitize()), w.expr()),
				sql: fmt.Sprintf(`DO $outbox_cdc$ DECLARE f regprocedure; BEGIN
  FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p WHERE p.proname = %s AND p.pronamespace = %s::regnamespace LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %%s TO %%s', f, %s);
  END LOOP;
END $outbox_cdc$`, quoteLiteral(fnName), quoteLiteral(pgx.Identifier{fnSchema}.Sanitize()), quoteLiteral(w.spec())),
			})
		}
	}

	// Who may emit messages: only the writers and the streaming role (its
	// heartbeat), not PUBLIC.
	if a.Messages {
		emitters := append([]role{stream}, writers...)
		var specs, checks []string
		for _, r := range emitters {
			specs = append(specs, r.spec())
			checks = append(checks, fmt.Sprintf("has_function_privilege(%s, v.oid, 'EXECUTE')", r.expr()))
		}
		names := make([]string, len(emitters))
		for i, r := range emitters {
			names[i] = r.String()
		}
		add(grant{
			what: "EXECUTE on pg_logical_emit_message to " + strings.Join(names, ", ") + ", revoked from PUBLIC",
			check: fmt.Sprintf("NOT %s AND NOT EXISTS (SELECT 1 FROM (%s) v WHERE NOT (%s))",
				publicMayEmit, emitMessageVariants, strings.Join(checks, " AND ")),
			sql: fmt.Sprintf(`DO $outbox_cdc$ DECLARE f regprocedure; BEGIN
  FOR f IN %s LOOP
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %%s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %%s TO %%s', f, %s);
  END LOOP;
END $outbox_cdc$`, emitMessageVariants, quoteLiteral(strings.Join(specs, ", "))),
			super: true,
		})
	}
	return out
}

// helperName is the <table>_publish function of an outbox table.
func helperName(table string) string {
	schema, name, _ := strings.Cut(table, ".")
	return schema + "." + name + "_publish"
}

// Grant gives the roles of a what they need, after Setup created the
// objects: each privilege that is not held yet is granted, and checked again.
// What the connected role cannot grant (pg_logical_emit_message and role
// attributes need a superuser) is listed in the error, with the statements
// to run and a pointer to docs/security.md and `setup --print-sql`.
func Grant(ctx context.Context, conn *pgx.Conn, n Names, a Access, say func(string)) error {
	if a.Stream == "" && len(a.Writers) == 0 && !a.Messages {
		// One role does everything and owns what it uses: nothing to grant
		// (and no catalog reads that write WAL after the slot was created).
		return nil
	}
	var missing []grant
	var failures []string
	for _, g := range grants(n, a) {
		held, err := holds(ctx, conn, g)
		if err != nil {
			return fmt.Errorf("setup: check %s: %w", g.what, explain(err))
		}
		if held {
			continue
		}
		_, err = conn.Exec(ctx, g.sql)
		if err == nil {
			if held, err = holds(ctx, conn, g); err == nil && held {
				say("granted " + g.what)
				continue
			}
		}
		missing = append(missing, g)
		if err != nil {
			failures = append(failures, g.what+": "+errorText(err))
		} else {
			failures = append(failures, g.what+": the role running setup may not grant it")
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var b strings.Builder
	super := false
	for _, g := range missing {
		super = super || g.super
		b.WriteString("  " + strings.ReplaceAll(g.sql, "\n", "\n  ") + ";\n")
	}
	who := "the owner of these objects"
	if super {
		who = "a superuser"
	}
	return fmt.Errorf("setup: the tables, the publication and the slot are ready, but not every privilege:\n  %s\n%s must run (or run `outbox-cdc setup` as %s; `outbox-cdc setup --print-sql` prints all of it, see %s):\n%s",
		strings.Join(failures, "\n  "), who, who, SecurityDoc, strings.TrimSuffix(b.String(), "\n"))
}

func holds(ctx context.Context, conn *pgx.Conn, g grant) (bool, error) {
	var ok *bool
	if err := conn.QueryRow(ctx, "SELECT "+g.check).Scan(&ok); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42704" { // undefined object: a role
			return false, fmt.Errorf("%s: create the role first (%s)", pgErr.Message, SecurityDoc)
		}
		return false, err
	}
	return ok != nil && *ok, nil
}

func errorText(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message
	}
	return err.Error()
}

// WarnMessagePrivileges logs, at the start of run with the message path on,
// when PUBLIC may still execute pg_logical_emit_message (any role could then
// publish events or stop the stream), and when heartbeat is set and the
// connected role may not execute it.
func WarnMessagePrivileges(ctx context.Context, conn *pgx.Conn, heartbeat bool, logger *slog.Logger) error {
	rows, err := conn.Query(ctx, `SELECT p.oid::regprocedure::text,
  p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'),
  has_function_privilege(p.oid, 'EXECUTE')
FROM pg_catalog.pg_proc p WHERE p.oid IN (`+emitMessageVariants+`) ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("postgres: %w", explain(err))
	}
	var sig string
	var public, mine bool
	var open, denied []string
	if _, err := pgx.ForEachRow(rows, []any{&sig, &public, &mine}, func() error {
		if public {
			open = append(open, sig)
		}
		if !mine {
			denied = append(denied, sig)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("postgres: %w", explain(err))
	}
	if len(open) > 0 {
		logger.Warn("PUBLIC can execute "+strings.Join(open, " and ")+": with outbox.messages enabled any role that can log in may publish events or stop the stream; run `outbox-cdc setup` as a superuser (or the SQL of `outbox-cdc setup --print-sql`) to revoke it, see "+SecurityDoc,
			"functions", strings.Join(open, ", "))
	}
	if heartbeat && len(denied) > 0 {
		logger.Warn("this role may not execute "+strings.Join(denied, " and ")+", so heartbeats will fail: name it in postgres.roles.stream and run `outbox-cdc setup`, see "+SecurityDoc,
			"functions", strings.Join(denied, ", "))
	}
	return nil
}
