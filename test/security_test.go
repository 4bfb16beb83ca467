package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The tests of this file cover who may publish (the message path is opt-in
// and locked down), the least-privilege role layout and `setup --print-sql`,
// non-transactional outbox messages, and what outbox-cdc shows of secrets,
// files and addresses.

// forged is the event an intruder writes in issue 9.
const forged = `{"specversion":"1.0","id":"forged-1","source":"/payments","type":"com.example.payment.refunded","data":{"amount":1000000}}`

// bareEnv is newEnv without the setup: the test decides who runs it. pgExtra
// is added inside the postgres section (indented by two spaces), sinkExtra
// to the sinks list, extra at the top level.
func bareEnv(t *testing.T, pgExtra, sinkExtra, extra string) *env {
	t.Helper()
	p := needPostgres(t)
	ctx := context.Background()
	e := &env{t: t, db: fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1)), dir: t.TempDir()}
	if err := p.CreateDatabase(ctx, e.db); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, p.URL(e.db))
	if err != nil {
		t.Fatal(err)
	}
	e.pool = pool
	e.outPath = filepath.Join(e.dir, "events.jsonl")
	e.cfgPath = filepath.Join(e.dir, "outbox-cdc.yaml")
	cfg := fmt.Sprintf(`postgres:
  url: %q
  status_interval: 200ms
  standby_poll: 200ms
%s
sinks:
  - {name: audit, type: file, path: %q}
%s
http: {addr: "-"}
log: {level: debug}
%s`, p.URL(e.db), pgExtra, e.outPath, sinkExtra, extra)
	writeFile(t, e.cfgPath, cfg)
	t.Cleanup(func() {
		pool.Close()
		c, err := p.Connect(context.Background(), e.db)
		if err == nil {
			// As in setupEnvOn: a walsender whose client just stopped may
			// count as active for a moment, and a slot left here breaks
			// every later test's setup.
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				var active bool
				if c.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE database = current_database() AND active)").Scan(&active) != nil || !active {
					break
				}
			}
			c.Exec(context.Background(), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active")
			c.Close(context.Background())
		}
	})
	return e
}

// newRole creates a LOGIN role with a unique name and the given attributes
// (e.g. "REPLICATION") and returns its name.
func newRole(t *testing.T, prefix, attrs string) string {
	t.Helper()
	p := needPostgres(t)
	name := fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), dbSeq.Add(1))
	if err := p.Exec(context.Background(), "postgres", "CREATE ROLE "+pgx.Identifier{name}.Sanitize()+" LOGIN "+attrs); err != nil {
		t.Fatal(err)
	}
	return name
}

// asRole connects to the env's database as role.
func (e *env) asRole(role string) *pgx.Conn {
	e.t.Helper()
	c, err := pgx.Connect(context.Background(), pg.UserURL(role, e.db))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// publish writes one event with the helper function and returns its id.
func publish(t *testing.T, c interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, typ string) string {
	t.Helper()
	var id string
	if err := c.QueryRow(context.Background(), "SELECT outbox_publish($1, '/security')::text", typ).Scan(&id); err != nil {
		t.Fatalf("outbox_publish(%s): %v", typ, err)
	}
	return id
}

func hasID(evs []delivered, id string) bool {
	for _, d := range evs {
		if d.ID == id {
			return true
		}
	}
	return false
}

func (p *proc) hasExited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitExit waits for the process to exit and fails the test if it does not.
func (p *proc) waitExit(t *testing.T, timeout time.Duration, what string) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("run did not stop within %v %s; log:\n%s", timeout, what, tail(p.log(), 30))
	}
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Issue 9: a role with no right to write the outbox can neither publish
// through pg_logical_emit_message nor stop the relay with garbage, because
// the message path is off unless configured.
func TestMessagePathIsOffByDefault(t *testing.T) {
	e := newEnv(t, "")
	intruder := e.asRole(newRole(t, "intruder", ""))
	p := e.start()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	for _, content := range []string{forged, "garbage"} {
		if _, err := intruder.Exec(t.Context(), "SELECT pg_logical_emit_message(true, 'outbox', $1::text)", content); err != nil {
			t.Fatal(err)
		}
	}
	id := publish(t, e.pool, "com.example.real")
	waitFor(t, 15*time.Second, "the real event (or run's exit)", func() bool { return p.hasExited() || hasID(e.readEvents(), id) })
	if p.hasExited() {
		t.Fatalf("run exited (%v) on a message written by a role that may not write the outbox:\n%s", p.err, tail(p.log(), 20))
	}
	if hasID(e.readEvents(), "forged-1") {
		t.Fatal("the forged event forged-1 was delivered")
	}
	if n := strings.Count(p.log(), "message events are off"); n != 1 {
		t.Errorf("the log says %d times that message events are off, want once:\n%s", n, p.log())
	}
	p.stop(t)
}

// emitMessageACL returns each pg_logical_emit_message variant and whether
// PUBLIC may execute it.
func emitMessageACL(t *testing.T, e *env) map[string]bool {
	t.Helper()
	rows, err := e.pool.Query(t.Context(), `SELECT p.oid::regprocedure::text,
		p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
		FROM pg_proc p WHERE p.proname = 'pg_logical_emit_message' AND p.pronamespace = 'pg_catalog'::regnamespace`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	var sig string
	var public bool
	if _, err := pgx.ForEachRow(rows, []any{&sig, &public}, func() error { out[sig] = public; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(out) < 2 {
		t.Fatalf("found %d pg_logical_emit_message variants, want the text and the bytea one: %v", len(out), out)
	}
	return out
}

// Issue 9: with the message path on, setup revokes pg_logical_emit_message
// (every variant) from PUBLIC and grants it to the configured writers; an
// intruder is refused, a writer's message is delivered, and run warns when
// PUBLIC got it back.
func TestMessagePathOptInLocksEmitMessage(t *testing.T) {
	writer := newRole(t, "writer", "")
	intruderRole := newRole(t, "intruder", "")
	e := bareEnv(t, "  roles: {writers: ["+writer+"]}", "", "outbox: {messages: {enabled: true}}\n")
	if out, err := e.cli(t.Context(), "setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	for sig, public := range emitMessageACL(t, e) {
		if public {
			t.Errorf("after setup PUBLIC may still execute %s", sig)
		}
	}
	intruder := e.asRole(intruderRole)
	for _, arg := range []any{forged, []byte("garbage")} {
		_, err := intruder.Exec(t.Context(), "SELECT pg_logical_emit_message(true, 'outbox', $1)", arg)
		if sqlState(err) != "42501" {
			t.Errorf("an intruder's pg_logical_emit_message(%T): %v, want permission denied (42501)", arg, err)
		}
	}
	w := e.asRole(writer)
	if _, err := w.Exec(t.Context(), `SELECT pg_logical_emit_message(true, 'outbox', '{"id":"m-1","type":"com.example.m","source":"/writer"}')`); err != nil {
		t.Fatalf("the writer's message: %v", err)
	}
	rowID := publish(t, w, "com.example.row")

	p := e.start()
	waitFor(t, 15*time.Second, "the writer's two events", func() bool {
		evs := e.readEvents()
		return hasID(evs, "m-1") && hasID(evs, rowID)
	})
	p.stop(t)
	if strings.Contains(p.log(), "PUBLIC") {
		t.Errorf("run warned about PUBLIC although setup revoked it:\n%s", p.log())
	}

	// Someone grants it back: run says so at start. PostgreSQL 17 added
	// a fourth argument (flush).
	sig := "boolean,text,text"
	if needPostgres(t).Version() >= 17 {
		sig = "boolean,text,text,boolean"
	}
	e.exec("GRANT EXECUTE ON FUNCTION pg_catalog.pg_logical_emit_message(" + sig + ") TO PUBLIC")
	p = e.start()
	waitFor(t, 15*time.Second, "a warning about PUBLIC", func() bool {
		return strings.Contains(p.log(), "PUBLIC can execute pg_logical_emit_message("+sig+")")
	})
	waitFor(t, 15*time.Second, "streaming", func() bool { _, a := e.slot(); return a }) // a stop during the start exits 1
	p.stop(t)
}

// Issue 8: a non-transactional message with the outbox prefix is never
// dropped quietly. Under the default block policy the stream stops at it,
// names it, and the slot does not pass it, also after a restart.
func TestNonTransactionalMessageBlocks(t *testing.T) {
	e := newEnv(t, "outbox: {messages: {enabled: true}}\n")
	p := e.start()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	before := publish(t, e.pool, "com.example.before")
	waitFor(t, 10*time.Second, "the first event", func() bool { return hasID(e.readEvents(), before) })
	var lsn string
	if err := e.pool.QueryRow(t.Context(), "SELECT pg_logical_emit_message(false, 'outbox', $1::text)::text",
		`{"id":"nt-1","type":"com.example.nt","source":"/nt"}`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	after := publish(t, e.pool, "com.example.after")
	for try := 1; try <= 2; try++ {
		p.waitExit(t, 20*time.Second, "at a non-transactional message")
		if p.err == nil {
			t.Fatalf("run %d exited 0 at a non-transactional message; log:\n%s", try, tail(p.log(), 20))
		}
		log := p.log()
		for _, want := range []string{"non-transactional", "message outbox", "nt-1", "LSN " + lsn, "on_invalid"} {
			if !strings.Contains(log, want) {
				t.Errorf("run %d: the error does not say %q:\n%s", try, want, tail(log, 10))
			}
		}
		if confirmed, _ := e.slot(); confirmed >= parseLSN(t, lsn) {
			t.Fatalf("run %d: the slot confirmed %X, past the message at %s", try, confirmed, lsn)
		}
		if hasID(e.readEvents(), after) {
			t.Fatalf("run %d: the event after the message was delivered", try)
		}
		if try == 1 {
			p = e.start()
		}
	}
}

// Issue 8: under outbox.on_invalid: dead-letter a non-transactional message
// is stored, counted, and the stream goes on.
func TestNonTransactionalMessageDeadLettered(t *testing.T) {
	addr := httpAddr(t)
	e := newEnv(t, "outbox: {messages: {enabled: true}, on_invalid: dead-letter}\n")
	p := e.start("OUTBOX_CDC_HTTP_ADDR=" + addr)
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	var lsn string
	if err := e.pool.QueryRow(t.Context(), "SELECT pg_logical_emit_message(false, 'outbox', $1::text)::text",
		`{"id":"nt-1","type":"com.example.nt","source":"/nt"}`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	after := publish(t, e.pool, "com.example.after")
	waitFor(t, 15*time.Second, "the event after the message", func() bool { return p.hasExited() || hasID(e.readEvents(), after) })
	if p.hasExited() {
		t.Fatalf("run exited: %v\n%s", p.err, tail(p.log(), 20))
	}
	ls := e.letters(t)
	if len(ls) != 1 || ls[0].lsn != lsn || ls[0].eventID != "nt-1" || !strings.Contains(ls[0].errMsg, "non-transactional") {
		t.Fatalf("dead letters = %+v, want one for message nt-1 at %s saying non-transactional", ls, lsn)
	}
	if n := mustMetric(t, scrape(t, addr), "outbox_cdc_messages_non_transactional_total"); n != 1 {
		t.Errorf("outbox_cdc_messages_non_transactional_total = %v, want 1", n)
	}
	p.stop(t)
}

// Issue 9: the documented role layout. An owner role runs setup (and is told
// what only a superuser can do); run streams as a role with REPLICATION and
// only the grants setup gave it, through the dead-letter table, the progress
// table, retention and the heartbeat; writers may write events, nobody else.
func TestLeastPrivilegeRoles(t *testing.T) {
	owner := newRole(t, "owner", "REPLICATION") // creates the slot
	stream := newRole(t, "stream", "REPLICATION")
	writer := newRole(t, "writer", "")
	intruderRole := newRole(t, "intruder", "")
	e := bareEnv(t, fmt.Sprintf("  roles: {stream: %s, writers: [%s]}", stream, writer),
		fmt.Sprintf("  - {name: copy, type: file, path: %q}", filepath.Join(t.TempDir(), "copy.jsonl")),
		"outbox: {messages: {enabled: true}, on_invalid: dead-letter, retention: {age: 1h, interval: 200ms}}\nheartbeat: {interval: 200ms}\n")
	ownerq := pgx.Identifier{owner}.Sanitize()
	e.exec("GRANT CREATE ON DATABASE " + pgx.Identifier{e.db}.Sanitize() + " TO " + ownerq)
	e.exec("GRANT CREATE ON SCHEMA public TO " + ownerq)
	asOwner := []string{"OUTBOX_CDC_POSTGRES_URL=" + pg.UserURL(owner, e.db)}

	// The owner cannot take pg_logical_emit_message from PUBLIC: setup
	// does everything else and says what a superuser must run.
	out, err := e.cliEnv(t.Context(), asOwner, "setup")
	if err == nil {
		t.Fatalf("setup as the owner role succeeded without locking pg_logical_emit_message down:\n%s", out)
	}
	for _, want := range []string{"pg_logical_emit_message", "REVOKE EXECUTE", "superuser", "docs/security.md", "--print-sql"} {
		if !strings.Contains(out, want) {
			t.Errorf("setup as the owner does not say %q:\n%s", want, out)
		}
	}
	if out, err := e.cli(t.Context(), "setup"); err != nil { // a superuser
		t.Fatalf("setup as a superuser: %v\n%s", err, out)
	}
	if out, err := e.cliEnv(t.Context(), asOwner, "setup"); err != nil {
		t.Fatalf("setup as the owner once a superuser did its part: %v\n%s", err, out)
	}

	// The stream role has what run needs and no more.
	var insert, update bool
	if err := e.pool.QueryRow(t.Context(), "SELECT has_table_privilege($1, 'public.outbox', 'INSERT'), has_table_privilege($1, 'public.outbox', 'UPDATE')", stream).Scan(&insert, &update); err != nil {
		t.Fatal(err)
	}
	if insert || update {
		t.Errorf("the stream role may INSERT (%v) or UPDATE (%v) the outbox", insert, update)
	}

	p := e.start("OUTBOX_CDC_POSTGRES_URL=" + pg.UserURL(stream, e.db))
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a || p.hasExited() })
	w := e.asRole(writer)
	row := publish(t, w, "com.example.row")
	if _, err := w.Exec(t.Context(), `SELECT pg_logical_emit_message(true, 'outbox', '{"id":"m-1","type":"com.example.m","source":"/writer"}')`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec(t.Context(), `SELECT pg_logical_emit_message(true, 'outbox', 'not a CloudEvent')`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Exec(t.Context(), `INSERT INTO outbox (type, source) VALUES ('com.example.insert', '/writer')`); err != nil {
		t.Fatal(err)
	}
	intruder := e.asRole(intruderRole)
	if _, err := intruder.Exec(t.Context(), `INSERT INTO outbox (type, source) VALUES ('com.example.forged', '/x')`); sqlState(err) != "42501" {
		t.Errorf("an intruder's INSERT INTO outbox: %v, want permission denied", err)
	}
	if _, err := intruder.Exec(t.Context(), "SELECT pg_logical_emit_message(true, 'outbox', $1::text)", forged); sqlState(err) != "42501" {
		t.Errorf("an intruder's pg_logical_emit_message: %v, want permission denied", err)
	}
	waitFor(t, 20*time.Second, "three events, a dead letter and both sinks' progress", func() bool {
		if p.hasExited() {
			return true
		}
		evs := e.readEvents()
		var n int
		e.pool.QueryRow(t.Context(), "SELECT count(*) FROM outbox_cdc_progress").Scan(&n)
		return len(evs) == 3 && hasID(evs, row) && hasID(evs, "m-1") && len(e.letters(t)) == 1 && n == 2
	})
	if p.hasExited() {
		t.Fatalf("run as the stream role exited: %v\n%s", p.err, tail(p.log(), 30))
	}
	time.Sleep(time.Second) // heartbeats and retention rounds
	p.stop(t)
	for _, bad := range []string{"permission denied", "heartbeat failed", "retention failed", "cannot save", "cannot store", "42501"} {
		if strings.Contains(p.log(), bad) {
			t.Errorf("run as the stream role logged %q:\n%s", bad, p.log())
		}
	}
}

// Issue 9: `setup --print-sql` needs no connection, and its output, run by a
// DBA with psql on a fresh database (twice: it is idempotent), is all run
// needs.
func TestPrintSQLSetsUpAFreshDatabase(t *testing.T) {
	stream := newRole(t, "stream", "")
	writer := newRole(t, "writer", "")
	e := bareEnv(t, fmt.Sprintf("  roles: {stream: %s, writers: [%s]}", stream, writer), "",
		"outbox: {messages: {enabled: true}}\nheartbeat: {interval: 200ms}\n")
	cmd := exec.CommandContext(t.Context(), binary, "setup", "--print-sql", "--config", e.cfgPath)
	cmd.Env = append(os.Environ(), "OUTBOX_CDC_POSTGRES_URL=postgres://nobody@127.0.0.1:1/nowhere")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	sql, err := cmd.Output()
	if err != nil {
		t.Fatalf("setup --print-sql without a server: %v\n%s", err, stderr.String())
	}
	path := filepath.Join(e.dir, "outbox-cdc.sql")
	writeFile(t, path, string(sql))
	for i := 1; i <= 2; i++ {
		psql := exec.CommandContext(t.Context(), pg.Tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg.URL(e.db), "-f", path)
		if out, err := psql.CombinedOutput(); err != nil {
			t.Fatalf("psql -f (run %d): %v\n%s\n--- the SQL:\n%s", i, err, out, sql)
		}
	}
	// Streaming needs no privilege on the outbox itself (only retention
	// does), and the stream role got REPLICATION from the script.
	var selectOutbox, replication bool
	if err := e.pool.QueryRow(t.Context(), `SELECT has_table_privilege($1, 'public.outbox', 'SELECT'),
		(SELECT rolreplication FROM pg_roles WHERE rolname = $1)`, stream).Scan(&selectOutbox, &replication); err != nil {
		t.Fatal(err)
	}
	if selectOutbox || !replication {
		t.Errorf("after the printed SQL the stream role has SELECT on the outbox %v (want false), REPLICATION %v (want true)", selectOutbox, replication)
	}
	p := e.start("OUTBOX_CDC_POSTGRES_URL=" + pg.UserURL(stream, e.db))
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a || p.hasExited() })
	w := e.asRole(writer)
	row := publish(t, w, "com.example.row")
	if _, err := w.Exec(t.Context(), `SELECT pg_logical_emit_message(true, 'outbox', '{"id":"m-1","type":"com.example.m","source":"/writer"}')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "both events", func() bool {
		evs := e.readEvents()
		return p.hasExited() || (hasID(evs, row) && hasID(evs, "m-1"))
	})
	if p.hasExited() {
		t.Fatalf("run after the printed SQL exited: %v\n%s", p.err, tail(p.log(), 30))
	}
	time.Sleep(500 * time.Millisecond) // heartbeats
	p.stop(t)
	for _, bad := range []string{"permission denied", "heartbeat failed"} {
		if strings.Contains(p.log(), bad) {
			t.Errorf("run logged %q:\n%s", bad, p.log())
		}
	}
}

// Issue 9: a password is never shown, whatever it contains, wherever the
// connection string could appear: errors at start, logs, /status and
// `status --json`.
func TestPasswordsNeverShow(t *testing.T) {
	const pw = "Qzx1@Kvw2:Jpy3%Hmb4 Gtn5'Fqc6\\Lmd7"
	pieces := []string{"Qzx1", "Kvw2", "Jpy3", "Hmb4", "Gtn5", "Fqc6", "Lmd7"}
	e := newEnv(t, "")
	closed, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	kvQuote := func(s string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
	}
	check := func(t *testing.T, where, out string) {
		t.Helper()
		for _, piece := range pieces {
			if strings.Contains(out, piece) {
				t.Errorf("%s shows %q of the password:\n%s", where, piece, out)
				return
			}
		}
	}

	// Connection strings that fail at start.
	failing := map[string]string{
		"URL, unencoded":                fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s", pw, pg.Port(), e.db),
		"URL, unencoded, no space":      fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s", "Qzx1@Kvw2:Jpy3%Hmb4", pg.Port(), e.db),
		"URL, @ and : only":             fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s", "Qzx1@Kvw2:Jpy3", pg.Port(), e.db),
		"URL, encoded, nothing listens": fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s", url.UserPassword("postgres", pw).String(), closed, e.db),
		"key/value, nothing listens":    fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s dbname=%s", closed, kvQuote(pw), e.db),
		"key/value, bad port":           fmt.Sprintf("host=127.0.0.1 port=x%d user=postgres password=%s dbname=%s", closed, kvQuote(pw), e.db),
	}
	for name, cs := range failing {
		t.Run(name, func(t *testing.T) {
			env := []string{"OUTBOX_CDC_POSTGRES_URL=" + cs}
			for _, cmd := range [][]string{{"run"}, {"setup"}, {"status", "--json"}, {"status"}, {"dlq", "list"}} {
				var out string
				var err error
				if cmd[0] == "dlq" {
					c := exec.CommandContext(t.Context(), binary, "dlq", "list", "--config", e.cfgPath)
					c.Env = append(os.Environ(), env...)
					b, cerr := c.CombinedOutput()
					out, err = string(b), cerr
				} else {
					out, err = e.cliEnv(t.Context(), env, cmd...)
				}
				if err == nil {
					t.Errorf("%s succeeded:\n%s", cmd, out)
				}
				check(t, strings.Join(cmd, " "), out)
			}
		})
	}

	// Connection strings that work (trust authentication ignores the
	// password): logs, /status and status --json of a running instance.
	working := map[string]string{
		"URL, encoded": fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", url.UserPassword("postgres", pw).String(), pg.Port(), e.db),
		"key/value":    fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s dbname=%s sslmode=disable", pg.Port(), kvQuote(pw), e.db),
	}
	for name, cs := range working {
		t.Run(name, func(t *testing.T) {
			addr := httpAddr(t)
			env := []string{"OUTBOX_CDC_POSTGRES_URL=" + cs, "OUTBOX_CDC_HTTP_ADDR=" + addr, "OUTBOX_CDC_HTTP_SLOT_POLL=100ms"}
			p := e.start(env...)
			waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a || p.hasExited() })
			id := publish(t, e.pool, "com.example.secret")
			waitFor(t, 10*time.Second, "the event", func() bool { return p.hasExited() || hasID(e.readEvents(), id) })
			resp, err := http.Get("http://" + addr + "/status")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !json.Valid(body) {
				t.Fatalf("/status: %s", body)
			}
			check(t, "/status", string(body))
			out, err := e.cliEnv(t.Context(), env, "status", "--json")
			if err != nil || !strings.Contains(out, `"instance"`) {
				t.Errorf("status --json (%v):\n%s", err, out)
			}
			check(t, "status --json", out)
			p.stop(t)
			check(t, "the log", p.log())
		})
	}
}

// Issue 9: the file sink's output is private (0600) unless sinks[].mode says
// otherwise.
func TestFileSinkOutputIsPrivate(t *testing.T) {
	e := newEnv(t, "")
	for _, tc := range []struct {
		mode string
		want os.FileMode
	}{{"", 0o600}, {"0640", 0o640}} {
		path := filepath.Join(e.dir, "out"+tc.mode+".jsonl")
		env := []string{"OUTBOX_CDC_SINKS_0_PATH=" + path}
		if tc.mode != "" {
			env = append(env, "OUTBOX_CDC_SINKS_0_MODE="+tc.mode)
		}
		p := e.start(env...)
		waitFor(t, 10*time.Second, "the file", func() bool { _, err := os.Stat(path); return err == nil || p.hasExited() })
		waitFor(t, 15*time.Second, "streaming", func() bool { _, a := e.slot(); return a || p.hasExited() }) // a stop during the start exits 1
		p.stop(t)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != tc.want {
			t.Errorf("mode %q: the file sink created its output with %#o, want %#o", tc.mode, got, tc.want)
		}
	}
}

// Issue 9: an http.addr that is not loopback is warned about at start. The
// address is from TEST-NET-1 (RFC 5737), never bound here, so the listen
// fails after the warning and nothing is exposed.
func TestNonLoopbackHTTPAddrWarns(t *testing.T) {
	e := newEnv(t, "")
	p := e.start("OUTBOX_CDC_HTTP_ADDR=192.0.2.1:9187")
	p.waitExit(t, 20*time.Second, "with an address it cannot listen on")
	if !strings.Contains(p.log(), "http.addr 192.0.2.1:9187 is not a loopback address") {
		t.Fatalf("no warning about a non-loopback http.addr:\n%s", p.log())
	}
}
