package test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

// failoverVersions are the majors the failover test runs on: 17 and 18
// (failover slots came with 17), or only the major OUTBOX_CDC_TEST_PG_VERSION
// selects.
func failoverVersions(t *testing.T) []int {
	v, err := harness.PGVersion()
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case v == 0:
		return []int{17, 18}
	case v >= 17:
		return []int{v}
	}
	return nil
}

// startPrimaryAndStandby starts a PostgreSQL major v and a synchronous
// streaming standby of it that synchronizes failover slots.
func startPrimaryAndStandby(t *testing.T, v int) (primary, standby *harness.Postgres) {
	t.Helper()
	ctx := context.Background()
	primary, err := harness.StartPostgres(ctx, harness.PostgresOptions{Version: v,
		ExtraConf: map[string]string{"wal_sender_timeout": "20s"}})
	harness.SkipIfNotInstalled(t, "postgres", err)
	t.Cleanup(func() { primary.Close() })
	standby, err = primary.StartStandby(ctx, harness.StandbyOptions{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("standby log:\n%s", standby.LogTail(40))
		}
		standby.Close()
	})
	return primary, standby
}

// multiHostURL lists both servers with target_session_attrs=read-write, as
// an operator configures outbox-cdc to follow a promotion.
func multiHostURL(a, b *harness.Postgres, db string) string {
	return fmt.Sprintf("postgres://postgres@%s,%s/%s?sslmode=disable&target_session_attrs=read-write&connect_timeout=3", a.Addr(), b.Addr(), db)
}

// failoverProducer commits events in transactions of known ids through a
// pool that follows the primary. A commit cut off by the primary's death is
// judged by whether its rows are on the new primary.
type failoverProducer struct {
	pool *pgxpool.Pool
	next []int // per-aggregate sequence
	sent atomic.Int64
}

func (p *failoverProducer) run(ctx context.Context, n, maxTx int, pause time.Duration, rng *mrand.Rand) error {
	for int(p.sent.Load()) < n {
		k := min(1+rng.IntN(maxTx), n-int(p.sent.Load()))
		trial := slices.Clone(p.next)
		ids := make([]string, k)
		rows := make([][]any, k)
		for i := range rows {
			a := rng.IntN(len(p.next))
			data, _ := json.Marshal(seqData{Agg: fmt.Sprintf("a%d", a), Seq: trial[a]})
			trial[a]++
			ids[i] = rand.Text()
			rows[i] = []any{ids[i], "test.event", "/test", "agg", fmt.Sprintf("a%d", a), string(data)}
		}
		committed, err := p.commit(ctx, ids, rows)
		if err != nil {
			return err
		}
		if committed {
			copy(p.next, trial)
			p.sent.Add(int64(k))
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	return nil
}

// commit inserts rows in one transaction; on a failure it waits for a
// primary and reports whether the transaction's rows are there.
func (p *failoverProducer) commit(ctx context.Context, ids []string, rows [][]any) (bool, error) {
	err := func() error {
		tx, err := p.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		// The id column is uuid in the default outbox; ids here are text
		// made unique per event and kept in subject to find them again.
		rs := make([][]any, len(rows))
		for i, r := range rows {
			rs[i] = []any{r[1], r[2], r[0], r[3], r[4], r[5]}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, []string{"type", "source", "subject", "aggregate_type", "aggregate_id", "data"}, pgx.CopyFromRows(rs)); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}()
	if err == nil {
		return true, nil
	}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		var n int
		qerr := p.pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE subject = ANY($1)", ids).Scan(&n)
		if qerr == nil {
			if n != 0 && n != len(ids) {
				return false, fmt.Errorf("transaction half there: %d of %d rows", n, len(ids))
			}
			return n == len(ids), nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, fmt.Errorf("commit failed (%v) and no primary answered: %v", err, qerr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Acceptance (issue 15): on PostgreSQL 17 and 18, a primary killed in the
// middle of 20,000 events and its synchronous standby promoted: outbox-cdc
// follows the promotion through a multi-host URL with
// target_session_attrs=read-write and resumes from the failover slot the
// standby kept. Nothing is lost, order per key holds, and duplicates are only
// events after the position the standby's copy of the slot had confirmed.
func TestFailoverLosesNothing(t *testing.T) {
	vs := failoverVersions(t)
	if len(vs) == 0 {
		t.Skip("failover slots need PostgreSQL 17 or newer; OUTBOX_CDC_TEST_PG_VERSION selects an older one")
	}
	for _, v := range vs {
		t.Run(strconv.Itoa(v), func(t *testing.T) { testFailover(t, v) })
	}
}

func testFailover(t *testing.T, v int) {
	const total = 20000
	primary, standby := startPrimaryAndStandby(t, v)
	ctx := context.Background()
	db := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	if err := primary.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	e := setupEnvOn(t, primary, db, "")
	var failover bool
	if err := e.pool.QueryRow(ctx, "SELECT failover FROM pg_replication_slots WHERE slot_name = 'outbox_cdc'").Scan(&failover); err != nil || !failover {
		t.Fatalf("setup on PostgreSQL %d made no failover slot (failover %v, %v)", v, failover, err)
	}
	url := multiHostURL(primary, standby, db)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	p := e.start("OUTBOX_CDC_POSTGRES_URL="+url, "OUTBOX_CDC_POSTGRES_RETRY_INITIAL=100ms", "OUTBOX_CDC_POSTGRES_RETRY_MAX=500ms")
	waitFor(t, 15*time.Second, "streaming", func() bool { _, a := e.slot(); return a })

	prod := &failoverProducer{pool: pool, next: make([]int, 20)}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prodDone := make(chan error, 1)
	go func() {
		prodDone <- prod.run(pctx, total, 200, 5*time.Millisecond, mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 15)))
	}()

	// Halfway, with the standby's copy of the slot following the primary's,
	// the primary dies.
	waitFor(t, 120*time.Second, "half the events delivered", func() bool { return e.countLines() >= total/2 })
	confirmed, _ := e.slot()
	if _, err := standby.WaitSlotSynced(ctx, primary, "outbox_cdc", confirmed, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	linesAtKill := e.countLines()
	var syncedText string
	sc, err := standby.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.QueryRow(ctx, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'outbox_cdc' AND synced").Scan(&syncedText); err != nil {
		t.Fatalf("the standby has no synchronized copy of the slot: %v", err)
	}
	sc.Close(ctx)
	synced := parseLSN(t, syncedText)
	promoted := time.Now()
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoteTook := time.Since(promoted)
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('failover.marker', '/t', 'marker', '{}')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the first event from the new primary", func() bool {
		return slices.ContainsFunc(e.readEvents()[linesAtKill:], func(d delivered) bool { return d.Type == "failover.marker" })
	})
	firstEvent := time.Since(promoted)
	t.Logf("PostgreSQL %d: primary killed at %d of %d lines delivered; standby's slot copy at %X (primary's slot at %X shortly before); pg_promote took %v; first event from the new primary %v after the promotion began",
		v, linesAtKill, total, synced, confirmed, promoteTook.Round(time.Millisecond), firstEvent.Round(time.Millisecond))

	if err := <-prodDone; err != nil {
		t.Fatal(err)
	}
	// What the new primary holds is what was committed.
	var want int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE type = 'test.event'").Scan(&want); err != nil {
		t.Fatal(err)
	}
	if want != int(prod.sent.Load()) {
		t.Fatalf("the new primary holds %d events, the producer saw %d commit", want, prod.sent.Load())
	}
	waitFor(t, 120*time.Second, "every event", func() bool {
		n := 0
		for _, d := range e.readEvents() {
			if d.Type == "test.event" {
				n++
			}
		}
		return n >= want
	})
	p.stop(t)

	var evs []delivered
	for _, d := range e.readEvents() {
		if d.Type == "test.event" {
			evs = append(evs, d)
		}
	}
	first, count := checkDelivery(t, evs, want)
	dups := 0
	for id, n := range count {
		if n == 1 {
			continue
		}
		dups += n - 1
		d := evs[first[id]]
		if lsn := parseLSN(t, d.LSN); lsn < synced {
			t.Fatalf("event %s (commit LSN %s) was delivered %d times, but it is before %X, the position the promoted standby's slot had confirmed", id, d.LSN, n, synced)
		}
	}
	if log := p.log(); !strings.Contains(log, "streaming") {
		t.Fatalf("no streaming line in the log:\n%s", tail(log, 20))
	}
	t.Logf("%d events, %d duplicates (all after the synchronized slot's position)", want, dups)
}

// Issue 15: a standby is refused by name (decoding on a standby is not
// supported), on every version the harness starts.
func TestStandbyIsRefusedByName(t *testing.T) {
	primary := needPostgres(t)
	ctx := context.Background()
	e := newEnv(t, "")
	standby, err := primary.StartStandby(ctx, harness.StandbyOptions{Name: "refused", NoSlotSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Exec(ctx, "postgres", "SELECT pg_drop_replication_slot('refused')")
	defer standby.Close()
	for _, cmd := range []string{"setup", "run"} {
		out, err := e.cliEnv(ctx, []string{"OUTBOX_CDC_POSTGRES_URL=" + standby.URL(e.db)}, cmd)
		var exit interface{ ExitCode() int }
		if err == nil || !errors.As(err, &exit) {
			t.Fatalf("%s against a standby: %v\n%s", cmd, err, out)
		}
		for _, w := range []string{"is a standby", fmt.Sprintf("PostgreSQL %d", primary.Version()), "target_session_attrs=read-write", "docs/postgres-versions.md"} {
			if !strings.Contains(out, w) {
				t.Fatalf("%s against a standby does not say %q:\n%s", cmd, w, out)
			}
		}
	}
}

// Issue 15: setup makes the slot a failover slot where the server has them
// (17+), turns a plain one into one, and run warns about a plain one; on an
// older server failover_slot: on is an error naming the version.
func TestFailoverSlotSetup(t *testing.T) {
	p := needPostgres(t)
	ctx := context.Background()
	env := func(mode string) []string { return []string{"OUTBOX_CDC_POSTGRES_FAILOVER_SLOT=" + mode} }
	if p.Version() < 17 {
		e := newEnv(t, "")
		out, err := e.cliEnv(ctx, env("on"), "setup")
		if err == nil {
			t.Fatalf("setup with failover_slot: on succeeded on PostgreSQL %d:\n%s", p.Version(), out)
		}
		for _, w := range []string{fmt.Sprintf("PostgreSQL %d has no failover slots", p.Version()), "failover_slot: auto"} {
			if !strings.Contains(out, w) {
				t.Fatalf("setup does not say %q:\n%s", w, out)
			}
		}
		return
	}
	e := newEnv(t, "")
	isFailover := func() bool {
		var f bool
		if err := e.pool.QueryRow(ctx, "SELECT failover FROM pg_replication_slots WHERE slot_name = 'outbox_cdc'").Scan(&f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if !isFailover() {
		t.Fatalf("setup on PostgreSQL %d made a plain slot", p.Version())
	}
	if out, err := e.cliEnv(ctx, env("off"), "setup"); err != nil || isFailover() {
		t.Fatalf("setup with failover_slot: off left a failover slot (%v):\n%s", err, out)
	}
	pr := e.start()
	waitFor(t, 15*time.Second, "a warning about the plain slot", func() bool {
		return strings.Contains(pr.log(), "is not a failover slot")
	})
	pr.stop(t)
	out, err := e.cli(ctx, "setup")
	if err != nil || !isFailover() || !strings.Contains(out, "is now a failover slot") {
		t.Fatalf("setup did not make the plain slot a failover slot (%v):\n%s", err, out)
	}
}
