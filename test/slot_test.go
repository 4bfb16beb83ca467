package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	outboxcdc "github.com/outbox-cdc/outbox-cdc"
	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
	"github.com/outbox-cdc/outbox-cdc/internal/testhook"
)

// exitCode runs the binary with args and the env's config, bounded by
// timeout, and returns the output and the exit code (-1 when it had to be
// killed at the timeout).
func (e *env) exitCode(timeout time.Duration, args ...string) (string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := e.cli(ctx, args...)
	if err == nil {
		return out, 0
	}
	if ctx.Err() != nil {
		return out, -1
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		e.t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return out, ee.ExitCode()
}

// Acceptance (issue 8, named cases): a slot invalidated while outbox-cdc was
// stopped (max_slot_wal_keep_size exceeded) makes `run` exit at once with an
// error naming the slot, that it was invalidated, the last confirmed
// position and the recovery, instead of reconnecting forever; `status` says
// the same; `setup` does not pass the lost slot off as ready. Then the
// recovery the message gives works: recreate the slot, backfill since the
// stop, nothing lost.
//
// The server is the test's own: lowering max_slot_wal_keep_size on the shared
// one would invalidate other tests' slots.
func TestInvalidatedSlotIsNamed(t *testing.T) {
	ctx := context.Background()
	srv, err := harness.StartPostgres(ctx, harness.PostgresOptions{
		ExtraConf: map[string]string{"max_slot_wal_keep_size": "1MB"},
	})
	harness.SkipIfNotInstalled(t, "postgres", err)
	t.Cleanup(func() { srv.Close() })
	e := newEnvOn(t, srv, "")

	p := e.start()
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('before', '/t', 'a', '{"agg":"a","seq":0}')`)
	waitFor(t, 20*time.Second, "the first event", func() bool { return len(e.readEvents()) == 1 })
	p.stop(t)
	stoppedAt := e.dbNow()

	// Written while outbox-cdc is stopped; then the slot loses its WAL.
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) SELECT 'gap', '/t', 'a', jsonb_build_object('agg', 'a', 'seq', g) FROM generate_series(1, 3) g`)
	e.makeSlotLost()
	confirmed, _ := e.slot()
	confirmedText := fmt.Sprintf("%X/%X", confirmed>>32, uint32(confirmed))

	out, code := e.exitCode(30*time.Second, "run")
	if code != 1 {
		t.Fatalf("run on an invalidated slot: exit %d (-1: still running after 30s), want 1:\n%s", code, tail(out, 8))
	}
	for _, w := range []string{`replication slot "outbox_cdc"`, "invalidated", confirmedText, "pg_drop_replication_slot", "outbox-cdc setup", "outbox-cdc backfill --since"} {
		if !strings.Contains(out, w) {
			t.Errorf("run's error does not say %q:\n%s", w, tail(out, 20))
		}
	}

	// status: the process exits at start, so there is no /readyz to scrape;
	// status says it instead.
	out, code = e.exitCode(30*time.Second, "status")
	if code != 0 {
		t.Fatalf("status exited %d:\n%s", code, out)
	}
	for _, w := range []string{"INVALIDATED", confirmedText, "outbox-cdc backfill --since"} {
		if !strings.Contains(out, w) {
			t.Errorf("status does not say %q:\n%s", w, out)
		}
	}
	out, _ = e.exitCode(30*time.Second, "status", "--json")
	if !strings.Contains(out, `"invalidated": true`) {
		t.Errorf("status --json does not say the slot is invalidated:\n%s", out)
	}

	out, code = e.exitCode(30*time.Second, "setup")
	if code != 1 || !strings.Contains(out, "invalidated") || !strings.Contains(out, "pg_drop_replication_slot") {
		t.Errorf("setup on an invalidated slot: exit %d, want 1 naming the slot and how to drop it:\n%s", code, out)
	}

	// The recovery the message gives.
	e.exec("SELECT pg_drop_replication_slot('outbox_cdc')")
	if out, code := e.exitCode(30*time.Second, "setup"); code != 0 {
		t.Fatalf("setup after dropping the slot: exit %d:\n%s", code, out)
	}
	p = e.start()
	out, code = e.backfill("--since", stoppedAt)
	if code != 0 {
		t.Fatalf("backfill --since %s exited %d:\n%s", stoppedAt, code, out)
	}
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('after', '/t', 'a', '{"agg":"a","seq":4}')`)
	waitFor(t, 20*time.Second, "every event", func() bool { return len(e.readEvents()) >= 5 })
	p.stop(t)
	checkDelivery(t, e.readEvents(), 5)
	if n := len(e.readEvents()); n != 5 {
		t.Errorf("%d events delivered, want 5 (each once)", n)
	}
}

// makeSlotLost writes WAL and checkpoints until the server invalidates the
// slot (the server's max_slot_wal_keep_size must be small).
func (e *env) makeSlotLost() {
	e.t.Helper()
	e.exec("CREATE TABLE IF NOT EXISTS filler (x text)")
	waitFor(e.t, time.Minute, "the slot to be invalidated", func() bool {
		e.exec("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 200)")
		e.exec("SELECT pg_switch_wal()")
		e.exec("CHECKPOINT")
		var st string
		e.pool.QueryRow(context.Background(), "SELECT coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = 'outbox_cdc'").Scan(&st)
		return st == "lost"
	})
}

// The slot invalidated while outbox-cdc streams it (a sink withholds its
// acknowledgements, so the slot cannot move, and WAL grows past
// max_slot_wal_keep_size): the server ends the stream, and outbox-cdc stops
// with the named error instead of reconnecting forever.
func TestInvalidatedSlotStopsTheStream(t *testing.T) {
	ctx := context.Background()
	srv, err := harness.StartPostgres(ctx, harness.PostgresOptions{
		ExtraConf: map[string]string{"max_slot_wal_keep_size": "1MB"},
	})
	harness.SkipIfNotInstalled(t, "postgres", err)
	t.Cleanup(func() { srv.Close() })
	e := newEnvOn(t, srv, "")
	cfg, err := config.Load(e.cfgPath, append(os.Environ(), "OUTBOX_CDC_HEARTBEAT_DISABLED=true", "OUTBOX_CDC_POSTGRES_DRAIN_TIMEOUT=1s",
		"OUTBOX_CDC_POSTGRES_RECONNECT_INITIAL=100ms", "OUTBOX_CDC_POSTGRES_RECONNECT_MAX=500ms"), nil)
	if err != nil {
		t.Fatal(err)
	}
	gate := &gateSink{}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	app, err := outboxcdc.New(testhook.With(runCtx, testhook.Hooks{NoKeepaliveFollow: true}), cfg,
		outboxcdc.Options{Sinks: []outboxcdc.CustomSink{gate.custom("gate")}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('held', '/t', 'a', '{"agg":"a","seq":0}')`)
	waitFor(t, 10*time.Second, "the gate to hold the event", func() bool { return gate.count() == 1 })
	e.makeSlotLost()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("outbox-cdc still runs 30s after its slot was invalidated")
	}
	if !errors.Is(err, replication.ErrSlotInvalidated) {
		t.Fatalf("run returned %v, want replication.ErrSlotInvalidated", err)
	}
	for _, w := range []string{`replication slot "outbox_cdc"`, "invalidated", "outbox-cdc backfill --since"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q: %v", w, err)
		}
	}
}

// recvlogical starts pg_recvlogical streaming the env's slot, as a program
// other than outbox-cdc would, and returns it.
func recvlogical(t *testing.T, e *env) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(pg.Tool("pg_recvlogical"), "-d", pg.URL(e.db), "--slot", "outbox_cdc", "--start",
		"-o", "proto_version=1", "-o", "publication_names=outbox_cdc", "-f", "/dev/null", "--no-loop")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// slotPID returns the slot's active_pid, 0 when inactive.
func (e *env) slotPID() int {
	e.t.Helper()
	var pid *int
	if err := e.pool.QueryRow(context.Background(), "SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'outbox_cdc'").Scan(&pid); err != nil {
		e.t.Fatal(err)
	}
	if pid == nil {
		return 0
	}
	return *pid
}

// Acceptance (issue 8, named cases): while a program other than outbox-cdc
// (pg_recvlogical) holds the slot, outbox-cdc waits, and its log and /readyz
// name that program, its pid and its client address, not "another
// instance"; /readyz is unready, since no outbox-cdc delivers. When the
// program stops, outbox-cdc takes over. A second outbox-cdc waiting behind
// the first says the holder is outbox-cdc and stays ready (hot standby).
func TestSlotHeldByAnotherProgram(t *testing.T) {
	e := newEnv(t, "")
	rl := recvlogical(t, e)
	waitFor(t, 10*time.Second, "pg_recvlogical to hold the slot", func() bool { return e.slotPID() != 0 })
	holder := strconv.Itoa(e.slotPID())

	addr := httpAddr(t)
	a := e.start("OUTBOX_CDC_HTTP_ADDR=" + addr)
	waitFor(t, 15*time.Second, "the log to name pg_recvlogical as the holder", func() bool {
		l := a.log()
		return strings.Contains(l, "pg_recvlogical") && strings.Contains(l, holder) && strings.Contains(l, "127.0.0.1")
	})
	if strings.Contains(a.log(), "another instance") {
		t.Errorf("the log calls pg_recvlogical another instance:\n%s", a.log())
	}
	var reason string
	waitFor(t, 10*time.Second, "/readyz to name the holder", func() bool {
		code, r := getReport(t, addr, "/readyz")
		reason = failing(r)
		return code == 503 && strings.Contains(reason, "pg_recvlogical") && strings.Contains(reason, holder) && strings.Contains(reason, "127.0.0.1")
	})
	t.Logf("/readyz: %s", reason)

	rl.Process.Signal(syscall.SIGINT)
	rl.Wait()
	waitFor(t, 15*time.Second, "outbox-cdc to take over", func() bool { return strings.Contains(a.log(), "taking over") })
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('after.takeover', '/t', 'a', '{"agg":"a","seq":0}')`)
	waitFor(t, 20*time.Second, "the event after the takeover", func() bool { return len(e.readEvents()) == 1 })
	waitFor(t, 10*time.Second, "/readyz ready", func() bool { code, _ := getReport(t, addr, "/readyz"); return code == 200 })

	// A second outbox-cdc: its holder is outbox-cdc, and it is a ready standby.
	streamer := strconv.Itoa(e.slotPID())
	addr2 := httpAddr(t)
	b := e.start("OUTBOX_CDC_HTTP_ADDR=" + addr2)
	waitFor(t, 15*time.Second, "the standby to name the other outbox-cdc", func() bool {
		l := b.log()
		return strings.Contains(l, "another outbox-cdc") && strings.Contains(l, streamer)
	})
	code, r := getReport(t, addr2, "/readyz")
	var standby string
	for _, c := range r.Checks {
		if c.Name == "replication" {
			standby = c.Reason
		}
	}
	if code != 200 || !strings.Contains(standby, "outbox-cdc") || !strings.Contains(standby, streamer) {
		t.Errorf("standby /readyz: %d %q, want 200 naming the outbox-cdc holder (pid %s)", code, standby, streamer)
	}
	b.stop(t)
	a.stop(t)
}
