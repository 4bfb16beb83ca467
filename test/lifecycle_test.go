package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The outbox's own lifecycle (issue 8, K1 and K2): an outbox table is known by
// its identity (OID), a partitioned outbox streams whole, renames are
// followed, and an outbox that leaves the publication is refused by the DDL
// guard or, without it, stops the stream with a named error before the slot
// passes a row it never saw.

// lifecycleOpts shape newLifecycleEnv.
type lifecycleOpts struct {
	ddl       string   // SQL run before setup (e.g. a partitioned outbox)
	setupEnv  []string // environment for `outbox-cdc setup`
	setupRole string   // run setup as this role instead of the superuser
}

// newLifecycleEnv is newEnv with SQL run before setup and an environment for
// setup (e.g. OUTBOX_CDC_POSTGRES_DDL_GUARD=off).
func newLifecycleEnv(t *testing.T, o lifecycleOpts) *env {
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
  slot: outbox_cdc
  publication: outbox_cdc
  status_interval: 200ms
  standby_poll: 200ms
sinks:
  - {name: audit, type: file, path: %q}
http: {addr: "-"}
heartbeat: {interval: 500ms}
log: {level: debug}
`, p.URL(e.db), e.outPath)
	writeFile(t, e.cfgPath, cfg)
	t.Cleanup(func() {
		pool.Close()
		// Drop the slot (slot names are per cluster): the walsender may
		// still hold it for a moment after outbox-cdc exited.
		c, err := p.Connect(context.Background(), e.db)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		for range 100 {
			var left bool
			c.Exec(context.Background(), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database() AND NOT active")
			if c.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE database = current_database())").Scan(&left); !left {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if o.ddl != "" {
		e.exec(o.ddl)
	}
	if o.setupRole != "" {
		o.setupEnv = append(o.setupEnv, "OUTBOX_CDC_POSTGRES_URL="+p.UserURL(o.setupRole, e.db))
	}
	out, err := e.cliEnv(ctx, o.setupEnv, "setup")
	if err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	return e
}

// guardOff is the environment that keeps setup from installing the DDL guard.
var guardOff = []string{"OUTBOX_CDC_POSTGRES_DDL_GUARD=off"}

// insertType commits one outbox row of the given type and returns its id.
func (e *env) insertType(typ string) string {
	e.t.Helper()
	var id string
	if err := e.pool.QueryRow(context.Background(),
		`INSERT INTO outbox (type, source) VALUES ($1, '/lifecycle') RETURNING id::text`, typ).Scan(&id); err != nil {
		e.t.Fatalf("insert %s: %v", typ, err)
	}
	return id
}

// types returns the types of the delivered events, in delivery order.
func (e *env) types() []string {
	var out []string
	for _, d := range e.readEvents() {
		out = append(out, d.Type)
	}
	return out
}

// waitTypes waits until every type in want was delivered.
func (e *env) waitTypes(timeout time.Duration, want ...string) {
	e.t.Helper()
	waitFor(e.t, timeout, fmt.Sprintf("events %v", want), func() bool {
		got := e.types()
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	})
}

// execErr runs sql and returns the server's error.
func (e *env) execErr(sql string) error {
	_, err := e.pool.Exec(context.Background(), sql)
	return err
}

// pgDetail is a server error with its detail and hint.
func pgDetail(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message + " | " + pe.Detail + " | " + pe.Hint
	}
	return err.Error()
}

// exited waits for the process to exit by itself and returns its exit code.
func (p *proc) exited(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("outbox-cdc still running %v later; log:\n%s", timeout, tail(p.log(), 30))
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// terminate sends SIGTERM and returns the exit code.
func (p *proc) terminate(t *testing.T) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	return p.exited(t, 60*time.Second)
}

// Acceptance (K1): a partitioned outbox (the DDL) is accepted by setup
// (twice) and run; rows in every partition are delivered, also in a partition
// attached while streaming; a detached partition is no longer the outbox.
func TestPartitionedOutbox(t *testing.T) {
	e := newLifecycleEnv(t, lifecycleOpts{ddl: `
CREATE TABLE public.outbox (
  id uuid NOT NULL DEFAULT gen_random_uuid(), type text NOT NULL, source text NOT NULL,
  subject text, aggregate_type text, aggregate_id text, data jsonb,
  datacontenttype text DEFAULT 'application/json', dataschema text, headers jsonb,
  created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE outbox_2025 PARTITION OF outbox FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE outbox_2026 PARTITION OF outbox FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE outbox_default PARTITION OF outbox DEFAULT;`})
	ctx := context.Background()
	if out, err := e.cli(ctx, "setup"); err != nil {
		t.Fatalf("setup run a second time: %v\n%s", err, out)
	}
	// Written after setup and before run: the slot has them.
	e.exec(`SELECT outbox_publish('p.before', '/p', '{"n":1}')`)
	e.exec(`INSERT INTO outbox (type, source, created_at) VALUES ('p.2025', '/p', '2025-03-01'), ('p.2040', '/p', '2040-01-01')`)
	p := e.start()
	waitFor(t, 15*time.Second, "streaming", func() bool {
		if _, a := e.slot(); a {
			return true
		}
		select {
		case <-p.done:
			t.Fatalf("run exited on a partitioned outbox:\n%s", tail(p.log(), 20))
		default:
		}
		return false
	})
	e.exec(`SELECT outbox_publish('p.now', '/p', '{"n":2}')`)
	e.exec(`CREATE TABLE outbox_2027 (LIKE outbox INCLUDING DEFAULTS)`)
	e.exec(`ALTER TABLE outbox ATTACH PARTITION outbox_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')`)
	e.exec(`INSERT INTO outbox (type, source, created_at) VALUES ('p.attached', '/p', '2027-06-01')`)
	e.exec(`ALTER TABLE outbox DETACH PARTITION outbox_2025`)
	if needPostgres(t).Version() < 15 {
		// PostgreSQL 14's pgoutput keeps publishing a detached partition
		// through the root until its walsender restarts (fixed in 15): the
		// documented step is to let outbox-cdc confirm past the DETACH and
		// restart it before writing into the detached table.
		end := e.currentLSN()
		waitFor(t, 15*time.Second, "the slot to confirm the DETACH", func() bool { c, _ := e.slot(); return c >= end })
		p.stop(t)
		p = e.start()
		waitFor(t, 15*time.Second, "streaming again", func() bool { _, a := e.slot(); return a })
	}
	e.exec(`INSERT INTO outbox_2025 (type, source, created_at) VALUES ('p.detached', '/p', '2025-06-01')`)
	e.exec(`INSERT INTO outbox (type, source, created_at) VALUES ('p.after-detach', '/p', '2025-07-01')`)
	want := []string{"p.before", "p.2025", "p.2040", "p.now", "p.attached", "p.after-detach"}
	e.waitTypes(30*time.Second, want...)
	end := e.currentLSN()
	waitFor(t, 15*time.Second, "the slot to confirm the last row", func() bool { c, _ := e.slot(); return c >= end })
	p.stop(t)
	got := e.types()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v (a row of the detached partition is not an outbox row)", got, want)
	}
}

// Acceptance (K1): an outbox renamed while streaming is followed: without the
// guard every row arrives, whatever the table is called when it is written;
// with the guard the rename is refused and says how to do it on purpose.
func TestRenamedOutbox(t *testing.T) {
	t.Run("guard off", func(t *testing.T) {
		e := newLifecycleEnv(t, lifecycleOpts{setupEnv: guardOff})
		p := e.start()
		waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
		e.insertType("r.1")
		e.exec("ALTER TABLE outbox RENAME TO outbox_old")
		e.exec(`INSERT INTO outbox_old (type, source) VALUES ('r.2', '/lifecycle')`)
		e.exec("ALTER TABLE outbox_old RENAME TO outbox")
		e.insertType("r.3")
		e.waitTypes(20*time.Second, "r.1", "r.2", "r.3")
		p.stop(t)
		if got := e.types(); len(got) != 3 {
			t.Fatalf("delivered %v, want r.1 r.2 r.3 once each", got)
		}
	})
	t.Run("guard on", func(t *testing.T) {
		e := newLifecycleEnv(t, lifecycleOpts{})
		p := e.start()
		waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
		err := e.execErr("ALTER TABLE outbox RENAME TO outbox_old")
		if err == nil {
			t.Fatal("ALTER TABLE outbox RENAME was accepted while the slot exists")
		}
		for _, w := range []string{"public.outbox", "outbox_cdc.allow_ddl", "teardown"} {
			if d := pgDetail(err); !strings.Contains(d, w) {
				t.Errorf("the refusal does not say %q: %s", w, d)
			}
		}
		e.insertType("r.after")
		e.waitTypes(20*time.Second, "r.after")
		p.stop(t)
		// teardown removes the guard with the slot.
		if out, err := e.cli(context.Background(), "teardown", "--yes"); err != nil || !strings.Contains(out, "DDL guard removed") {
			t.Fatalf("teardown: %v\n%s", err, out)
		}
		e.exec("ALTER TABLE outbox RENAME TO outbox_old")
	})
}

// Acceptance (K2 prevent): CREATE EVENT TRIGGER needs a superuser. A role
// that is not one gets setup without the guard and is told so (detection
// only: a rename is not refused), and postgres.ddl_guard: on makes that a
// named error.
func TestDDLGuardNeedsSuperuser(t *testing.T) {
	pg := needPostgres(t)
	role := fmt.Sprintf("lc_owner_%d_%d", os.Getpid(), dbSeq.Add(1))
	if err := pg.CreateRole(context.Background(), role, true); err != nil {
		t.Fatal(err)
	}
	e := newLifecycleEnv(t, lifecycleOpts{
		ddl: fmt.Sprintf(`DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %%I TO %[1]s', current_database()); END $$;
			GRANT CREATE ON SCHEMA public TO %[1]s`, role),
		setupRole: role,
	})
	ctx := context.Background()
	asRole := []string{"OUTBOX_CDC_POSTGRES_URL=" + pg.UserURL(role, e.db)}
	out, err := e.cliEnv(ctx, asRole, "setup")
	if err != nil || !strings.Contains(out, "DDL guard not installed") || !strings.Contains(out, "CREATE EVENT TRIGGER needs a superuser") {
		t.Fatalf("setup as %s: %v, want it to say the guard is not installed and why:\n%s", role, err, out)
	}
	out, err = e.cliEnv(ctx, append(asRole, "OUTBOX_CDC_POSTGRES_DDL_GUARD=on"), "setup")
	if err == nil || !strings.Contains(out, "postgres.ddl_guard is on") || !strings.Contains(out, "superuser") {
		t.Fatalf("setup as %s with ddl_guard on: %v, want a named error:\n%s", role, err, out)
	}
	e.exec("ALTER TABLE outbox RENAME TO outbox_old") // no guard: detection only
}

// Acceptance (K1): a restart after the outbox was renamed, or replaced by
// another table of the same name, stops with a named error instead of
// streaming the wrong table.
func TestRestartAfterRenameIsNamed(t *testing.T) {
	e := newLifecycleEnv(t, lifecycleOpts{setupEnv: guardOff})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e.exec("ALTER TABLE outbox RENAME TO outbox_old")
	out, err := e.cli(ctx, "run")
	if err == nil || !strings.Contains(out, "outbox table public.outbox") || !strings.Contains(out, "renamed to public.outbox_old") {
		t.Fatalf("run after a rename: %v, want a named error saying the outbox was renamed to public.outbox_old:\n%s", err, tail(out, 10))
	}
	// setup does not create a second outbox beside the renamed one.
	out, err = e.cliEnv(ctx, guardOff, "setup")
	if err == nil || !strings.Contains(out, "renamed to public.outbox_old") {
		t.Fatalf("setup after a rename: %v, want a named error:\n%s", err, tail(out, 10))
	}
	var created bool
	if err := e.pool.QueryRow(ctx, "SELECT to_regclass('public.outbox') IS NOT NULL").Scan(&created); err != nil || created {
		t.Fatalf("setup created a new public.outbox beside the renamed one (%v)", err)
	}
	e.exec(`CREATE TABLE outbox (LIKE outbox_old INCLUDING ALL)`)
	out, err = e.cli(ctx, "run")
	if err == nil || !strings.Contains(out, "outbox table public.outbox") || !strings.Contains(out, "not the table") {
		t.Fatalf("run with another table under the outbox's name: %v, want a named error:\n%s", err, tail(out, 10))
	}
}

// driftCase is one way of taking the outbox out of the publication.
type driftCase struct {
	name     string
	ddl      []string // what the operator does while streaming
	refusals []string // statements the guard must refuse
	// newSlot: PostgreSQL cannot decode WAL written before a publication
	// was created again ("publication does not exist"), so recovery starts
	// a new slot (teardown, setup) and the rest is backfill's.
	newSlot bool
}

var driftCases = []driftCase{
	{
		name:     "dropped from the publication",
		ddl:      []string{"ALTER PUBLICATION outbox_cdc DROP TABLE outbox"},
		refusals: []string{"ALTER PUBLICATION outbox_cdc DROP TABLE outbox", "ALTER PUBLICATION outbox_cdc SET TABLE outbox_dead_letter", "DROP PUBLICATION outbox_cdc"},
	},
	{
		name:     "publication dropped",
		ddl:      []string{"DROP PUBLICATION outbox_cdc"},
		refusals: []string{"DROP PUBLICATION outbox_cdc"},
		newSlot:  true,
	},
	{
		name: "dropped and recreated",
		ddl: []string{"CREATE TABLE outbox_copy (LIKE outbox INCLUDING ALL)", "DROP TABLE outbox",
			"ALTER TABLE outbox_copy RENAME TO outbox"},
		refusals: []string{"DROP TABLE outbox"},
	},
}

// Acceptance (K2): the outbox leaves the publication while streaming (dropped
// from it, or dropped and recreated). With the guard the DDL is refused and
// streaming goes on; without it the stream stops with an error naming the
// table and the publication, /readyz says why, the metric is set, the exit is
// non-zero and the slot never passes the row written after the change.
func TestOutboxLeavesPublication(t *testing.T) {
	for _, tc := range driftCases {
		t.Run(tc.name+"/guard on", func(t *testing.T) {
			e := newLifecycleEnv(t, lifecycleOpts{})
			p := e.start()
			waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
			for _, sql := range tc.refusals {
				err := e.execErr(sql)
				if err == nil {
					t.Fatalf("%s: accepted while the slot exists", sql)
				}
				if d := pgDetail(err); !strings.Contains(d, "outbox_cdc.allow_ddl") || !strings.Contains(d, "teardown") {
					t.Fatalf("%s: the refusal does not say how to do it on purpose: %s", sql, d)
				}
			}
			e.insertType("g.after")
			e.waitTypes(20*time.Second, "g.after")
			p.stop(t)
		})
		for _, mode := range []string{"guard off", "guard on, allowed on purpose"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) { testDrift(t, tc, mode != "guard off") })
		}
	}
}

// testDrift takes the outbox out of the publication while streaming, without
// the guard or through it with outbox_cdc.allow_ddl, and asserts the named
// stop.
func testDrift(t *testing.T, tc driftCase, allowed bool) {
	o := lifecycleOpts{setupEnv: guardOff}
	if allowed {
		o = lifecycleOpts{}
	}
	e := newLifecycleEnv(t, o)
	addr := httpAddr(t)
	p := e.start("OUTBOX_CDC_HTTP_ADDR="+addr, "OUTBOX_CDC_HTTP_LINGER=60s", "OUTBOX_CDC_POSTGRES_PUBLICATION_CHECK=1s")
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.insertType("d.before")
	e.waitTypes(15*time.Second, "d.before")
	if allowed {
		e.exec("BEGIN; SET LOCAL outbox_cdc.allow_ddl = on; " + strings.Join(tc.ddl, "; ") + "; COMMIT")
	} else {
		for _, sql := range tc.ddl {
			e.exec(sql)
		}
	}
	before := e.currentLSN()
	e.insertType("d.lost")
	e.exec("SELECT pg_logical_emit_message(true, 'unrelated', 'x')") // more WAL for keepalives to report
	var reason string
	waitFor(t, 30*time.Second, "/readyz to name the drift", func() bool {
		select {
		case <-p.done:
			t.Fatalf("exited before /readyz could be read (http.linger):\n%s", tail(p.log(), 20))
		default:
		}
		code, r := getReport(t, addr, "/readyz")
		reason = failing(r)
		return code == 503 && strings.Contains(reason, "public.outbox") && strings.Contains(reason, "outbox_cdc")
	})
	if !strings.Contains(reason, "backfill") {
		t.Errorf("/readyz does not point at backfill: %s", reason)
	}
	if v, ok := metric(scrape(t, addr), "outbox_cdc_publication_drift", "table", "public.outbox"); !ok || v != 1 {
		t.Errorf("outbox_cdc_publication_drift{table=public.outbox} = %v (present %v), want 1", v, ok)
	}
	if code := p.terminate(t); code == 0 {
		t.Fatalf("exit 0 after the outbox left the publication")
	}
	log := p.log()
	t.Logf("/readyz: %s\nexit log:\n%s", reason, tail(log, 4))
	for _, w := range []string{"outbox table public.outbox", "publication outbox_cdc", "backfill"} {
		if !strings.Contains(log, w) {
			t.Errorf("the error does not say %q:\n%s", w, tail(log, 15))
		}
	}
	if c, _ := e.slot(); c > before {
		t.Fatalf("confirmed_flush_lsn %X passed %X, the WAL position before the row written outside the publication", c, before)
	}
	if slices.Contains(e.types(), "d.lost") {
		t.Fatal("the row written outside the publication was delivered: the test did not take the outbox out")
	}
	// A restart is refused with the same named error.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := e.cli(ctx, "run")
	if err == nil || !strings.Contains(out, "publication outbox_cdc") {
		t.Fatalf("run after the drift: %v, want the named error:\n%s", err, tail(out, 10))
	}
	if allowed && !strings.Contains(log, "let a change to an outbox table through on purpose") {
		t.Errorf("the stream did not see the guard's message:\n%s", tail(log, 15))
	}
	// Recover: setup accepts the outbox as it is now and says what to
	// backfill; run streams again.
	out, err = e.cliEnv(ctx, o.setupEnv, "setup")
	if err != nil || !strings.Contains(out, "backfill") {
		t.Fatalf("setup after the drift: %v, want it to accept the outbox and point at backfill:\n%s", err, out)
	}
	if tc.newSlot {
		if !strings.Contains(out, "teardown") {
			t.Fatalf("setup after the publication was dropped does not say that the slot must be started anew:\n%s", out)
		}
		if out, err := e.cli(ctx, "teardown", "--yes"); err != nil {
			t.Fatalf("teardown: %v\n%s", err, out)
		}
		if out, err := e.cliEnv(ctx, o.setupEnv, "setup"); err != nil {
			t.Fatalf("setup: %v\n%s", err, out)
		}
	}
	p = e.start()
	e.insertType("d.after-fix")
	e.waitTypes(20*time.Second, "d.after-fix")
	p.stop(t)
	if slices.Contains(e.types(), "d.lost") {
		t.Fatal("d.lost delivered from the slot: it was written outside the publication")
	}
}

// Acceptance (K1): a relation in the publication that is no outbox table is
// an invalid row: under block the stream stops naming it and the slot holds;
// under dead-letter its row is stored and the stream goes on.
func TestUnconfiguredRelationInPublication(t *testing.T) {
	prepare := func(t *testing.T) *env {
		e := newLifecycleEnv(t, lifecycleOpts{})
		e.exec("CREATE TABLE public.other (id int PRIMARY KEY, v text)")
		e.exec("ALTER PUBLICATION outbox_cdc ADD TABLE public.other")
		return e
	}
	t.Run("block", func(t *testing.T) {
		e := prepare(t)
		p := e.start()
		waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
		e.insertType("u.before")
		e.waitTypes(15*time.Second, "u.before")
		before := e.currentLSN()
		e.exec("INSERT INTO public.other VALUES (7, 'not an event')")
		e.insertType("u.after")
		if code := p.exited(t, 30*time.Second); code == 0 {
			t.Fatal("exit 0")
		}
		log := p.log()
		for _, w := range []string{"public.other", "OID", "LSN", "outbox.tables"} {
			if !strings.Contains(log, w) {
				t.Errorf("the error does not say %q:\n%s", w, tail(log, 15))
			}
		}
		if c, _ := e.slot(); c > before {
			t.Fatalf("confirmed_flush_lsn %X passed %X, before the unknown relation's row", c, before)
		}
		if slices.Contains(e.types(), "u.after") {
			t.Fatal("the stream went past the unknown relation's row under block")
		}
	})
	t.Run("dead-letter", func(t *testing.T) {
		e := prepare(t)
		p := e.start("OUTBOX_CDC_OUTBOX_ON_INVALID=dead-letter")
		waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
		e.exec("INSERT INTO public.other VALUES (7, 'not an event')")
		e.insertType("u.after")
		e.waitTypes(20*time.Second, "u.after")
		p.stop(t)
		var table, errMsg, raw string
		if err := e.pool.QueryRow(context.Background(),
			"SELECT source_table, error, convert_from(raw, 'UTF8') FROM outbox_dead_letter WHERE sink = ''").Scan(&table, &errMsg, &raw); err != nil {
			t.Fatalf("no dead letter for the unknown relation's row: %v", err)
		}
		if table != "public.other" || !strings.Contains(errMsg, "OID") || !strings.Contains(raw, "not an event") {
			t.Fatalf("dead letter = %s / %s / %s, want public.other with its OID and the raw row", table, errMsg, raw)
		}
	})
}

// driftSince finds the time a drift error gives to backfill from.
var driftSince = regexp.MustCompile(`re-send the rows written since (\S+) \(publication membership was last verified`)

// Found by the DDL chaos (TestDDLChaos): the time a drift error gave to
// backfill from was the last time membership was verified, but created_at is
// when a row's transaction began. A transaction open at that check (long, or
// blocked on the lock of a DROP TABLE) writes its row after the outbox left
// the publication with a time before it: `backfill --since <the error's
// time>` skipped it.
func TestDriftBackfillTimeCoversOpenTransactions(t *testing.T) {
	e := newLifecycleEnv(t, lifecycleOpts{setupEnv: guardOff})
	p := e.start("OUTBOX_CDC_POSTGRES_PUBLICATION_CHECK=200ms")
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var began time.Time
	if err := tx.QueryRow(ctx, "SELECT now()").Scan(&began); err != nil {
		t.Fatal(err)
	}
	// Membership is verified every 200ms meanwhile, well after the
	// transaction began (the error's time has whole seconds).
	time.Sleep(2500 * time.Millisecond)
	e.exec("ALTER PUBLICATION outbox_cdc DROP TABLE outbox")
	var id string
	if err := tx.QueryRow(ctx, `INSERT INTO outbox (type, source) VALUES ('open.tx', '/lifecycle') RETURNING id::text`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if code := p.exited(t, 30*time.Second); code == 0 {
		t.Fatal("exit 0 after the outbox left the publication")
	}
	m := driftSince.FindStringSubmatch(p.log())
	if m == nil {
		t.Fatalf("the error does not say since when to backfill:\n%s", tail(p.log(), 5))
	}
	if out, err := e.cliEnv(ctx, guardOff, "setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	out, code := e.backfill("--since", m[1])
	if code != 0 {
		t.Fatalf("backfill --since %s exited %d:\n%s", m[1], code, out)
	}
	if !slices.Contains(e.types(), "open.tx") {
		t.Fatalf("backfill --since %s (the time in the error) did not re-send row %s, written outside the publication by a transaction that began at %s:\n%s",
			m[1], id, began.UTC().Format(time.RFC3339Nano), out)
	}
}
