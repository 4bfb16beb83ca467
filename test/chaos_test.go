package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// DDL chaos (issue 8, acceptance 2): under load, at random moments, the
// partitioned outbox is renamed and back, partitions are attached and
// detached, the outbox is dropped from the publication (and added back), and
// it is dropped and created again. At the end the database is the truth:
//
//   - every row of the outbox (and of the partitions and tables the test
//     detached or dropped, kept in chaos_graveyard) was delivered;
//   - a row written while the outbox was in the publication was streamed (it
//     carries pglsn), in commit order per aggregate, and streamed twice only
//     when it was after the position confirmed when a run of outbox-cdc
//     ended;
//   - a row delivered only by backfill was written while a change the test
//     made was in effect, which ended in a named stop: a non-zero exit whose
//     error names the table and the publication and says since when to
//     backfill, with the slot confirmed no further than just after the
//     change. The operator's recovery follows: setup, backfill from the time
//     in the error, restart;
//   - a change the guard refused took the writer's transaction with it: its
//     row is not in the table and was never delivered.
//
// "guard on" mixes changes the guard refuses with changes let through on
// purpose (SET outbox_cdc.allow_ddl = on); "guard off" has detection only.

// chaosPart is the width of the outbox's range partitions on created_at.
const chaosPart = 5 // seconds

// chaosOutboxDDL is the partitioned outbox with a default partition and one
// range partition starting at each of parts (Unix seconds), an index on the
// time column (backfill pages by it), and the graveyard where the test keeps
// rows it takes out of the outbox.
func chaosOutboxDDL(parts []int64) string {
	var b strings.Builder
	b.WriteString(`CREATE TABLE public.outbox (
  id uuid NOT NULL DEFAULT gen_random_uuid(), type text NOT NULL, source text NOT NULL,
  subject text, aggregate_type text, aggregate_id text, data jsonb,
  datacontenttype text DEFAULT 'application/json', dataschema text, headers jsonb,
  created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX ON public.outbox (created_at);
CREATE TABLE public.outbox_default PARTITION OF public.outbox DEFAULT;
`)
	for _, s := range parts {
		fmt.Fprintf(&b, "CREATE TABLE public.%s PARTITION OF public.outbox FOR VALUES FROM (%s) TO (%s);\n", chaosPartName(s), chaosTS(s), chaosTS(s+chaosPart))
	}
	return b.String()
}

const chaosGraveyardDDL = `CREATE TABLE IF NOT EXISTS chaos_graveyard (
  id uuid, aggregate_id text, data jsonb, created_at timestamptz, committed timestamptz)`

// chaosBury copies the rows of table into the graveyard, with the commit
// time of the transaction that wrote each.
func chaosBury(table string) string {
	return "INSERT INTO chaos_graveyard SELECT id, aggregate_id, data, created_at, pg_xact_commit_timestamp(xmin) FROM " + table
}

func chaosPartName(start int64) string { return fmt.Sprintf("outbox_p%d", start) }

func chaosTS(unix int64) string {
	return "'" + time.Unix(unix, 0).UTC().Format("2006-01-02 15:04:05+00") + "'"
}

// chaosWindow is a span of time in which rows may have been written outside
// the publication: from just before a change took the outbox out (DB clock)
// to just after setup put it back.
type chaosWindow struct {
	from, to time.Time
	what     string
}

// chaosEnd is where a run of outbox-cdc ended: the slot's confirmed position
// and the lines in the file sink's output then.
type chaosEnd struct {
	confirmed uint64
	lines     int
	why       string
}

// chaosBackfill is one `outbox-cdc backfill` and the output lines it wrote.
type chaosBackfill struct {
	since    time.Time
	from, to int
}

// chaos is one run of the DDL chaos against one database.
type chaos struct {
	t        *testing.T
	e        *env
	guard    bool     // the DDL guard is installed
	setupEnv []string // environment for setup (the guard mode)
	kills    bool     // also kill -9 outbox-cdc at random moments
	rng      *rand.Rand
	p        *proc
	out      *chaosReader

	parts     []int64 // range partitions attached, by start, in order
	chaosSeq  int     // next seq of aggregate "chaos" (rows written to the renamed outbox)
	windows   []chaosWindow
	ends      []chaosEnd
	backfills []chaosBackfill
	refused   []string // ids of rows whose transaction the guard refused
	ops       map[string]int
}

// TestDDLChaos is the short DDL chaos of `make test`: about half a minute of
// load and changes with the guard off and as long with it on.
func TestDDLChaos(t *testing.T) {
	for _, guard := range []bool{false, true} {
		t.Run(map[bool]string{false: "guard off", true: "guard on"}[guard], func(t *testing.T) {
			runChaos(t, guard, 25*time.Second, false)
		})
	}
}

// TestDDLChaosSoak is the DDL chaos of `make soak`: $OUTBOX_CDC_TEST_SOAK split
// between the guard off and on, with kill -9 of outbox-cdc among the faults.
func TestDDLChaosSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("OUTBOX_CDC_TEST_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set OUTBOX_CDC_TEST_SOAK (make soak)")
	}
	for _, guard := range []bool{false, true} {
		t.Run(map[bool]string{false: "guard off", true: "guard on"}[guard], func(t *testing.T) {
			runChaos(t, guard, d/2, true)
		})
	}
}

func runChaos(t *testing.T, guard bool, d time.Duration, kills bool) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	now := time.Now().Unix() / chaosPart * chaosPart
	var parts []int64
	for s := now - 2*chaosPart; s < now+4*chaosPart; s += chaosPart {
		parts = append(parts, s)
	}
	o := lifecycleOpts{ddl: chaosOutboxDDL(parts) + chaosGraveyardDDL}
	if !guard {
		o.setupEnv = guardOff
	}
	e := newLifecycleEnv(t, o)
	c := &chaos{t: t, e: e, guard: guard, setupEnv: o.setupEnv, kills: kills, rng: rand.New(rand.NewPCG(seed, 8)),
		out: &chaosReader{path: e.outPath}, parts: parts, ops: map[string]int{}}
	c.start()

	// The load: one writer, one transaction at a time, so that seq per
	// aggregate is commit order. A transaction that fails (the outbox is
	// renamed) is retried; what committed is in the table.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var produced, failed atomic.Int64
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		rng := rand.New(rand.NewPCG(seed, 9))
		next := make([]int, 8)
		for ctx.Err() == nil {
			n, err := produceCounted(ctx, e, next, 50, 10, 15*time.Millisecond, rng)
			produced.Add(int64(n))
			if err != nil {
				failed.Add(1)
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()

	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(300+c.rng.IntN(1200)) * time.Millisecond)
		c.running()
		switch op := c.pick(); op {
		case "rename":
			c.rename()
		case "attach":
			c.attach()
		case "detach":
			c.detach()
		case "unpublish":
			c.unpublish()
		case "recreate":
			c.recreate()
		case "kill":
			c.p.kill()
			c.ended("kill -9")
			c.ops["kill -9"]++
			c.start()
		}
	}
	cancel()
	<-prodDone
	c.running()
	c.finish(produced.Load(), failed.Load(), d)
}

// pick chooses the next change.
func (c *chaos) pick() string {
	ops := []string{"rename", "rename", "attach", "attach", "detach", "unpublish", "unpublish", "recreate", "recreate"}
	if c.kills {
		ops = append(ops, "kill")
	}
	return ops[c.rng.IntN(len(ops))]
}

// refuse reports whether the next change is tried without allow_ddl, for the
// guard to refuse; with the guard on, half of them are.
func (c *chaos) refuse() bool { return c.guard && c.rng.IntN(2) == 0 }

// running fails the test when outbox-cdc stopped although no change the test
// made should have stopped it.
func (c *chaos) running() {
	c.t.Helper()
	select {
	case <-c.p.done:
		c.t.Fatalf("outbox-cdc exited (%v) with no change that takes the outbox out of the publication pending; log:\n%s", c.p.err, tail(c.p.log(), 30))
	default:
	}
}

func (c *chaos) dbClock() time.Time {
	c.t.Helper()
	var ts time.Time
	if err := c.e.pool.QueryRow(context.Background(), "SELECT clock_timestamp()").Scan(&ts); err != nil {
		c.t.Fatal(err)
	}
	return ts
}

// tx runs stmts in one transaction, after SET LOCAL outbox_cdc.allow_ddl =
// on when allow.
func (c *chaos) tx(allow bool, stmts ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tx, err := c.e.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if allow {
		stmts = append([]string{"SET LOCAL outbox_cdc.allow_ddl = on"}, stmts...)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return tx.Commit(ctx)
}

// must is tx that fails the test on an error.
func (c *chaos) must(allow bool, stmts ...string) {
	c.t.Helper()
	if err := c.tx(allow, stmts...); err != nil {
		c.t.Fatal(err)
	}
}

// tryRefused writes an outbox row and then tries stmts in the same
// transaction, which the guard must refuse: the row goes with it.
func (c *chaos) tryRefused(op string, stmts ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tx, err := c.e.pool.Begin(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var id string
	if err := tx.QueryRow(ctx, `INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data)
		VALUES ('chaos.refused', '/chaos', 'agg', 'refused', '{"agg":"refused","seq":0}') RETURNING id::text`).Scan(&id); err != nil {
		c.t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err = tx.Exec(ctx, s); err != nil {
			break
		}
	}
	if err == nil {
		err = tx.Commit(ctx)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "55006" || !strings.Contains(pe.Message, "outbox-cdc") || !strings.Contains(pe.Hint, "outbox_cdc.allow_ddl") {
		c.t.Fatalf("%s with the DDL guard on: %v, want the guard's refusal (SQLSTATE 55006, naming outbox-cdc and allow_ddl)", op, err)
	}
	c.refused = append(c.refused, id)
	c.ops[op+" refused"]++
}

// rename renames the outbox away, writes rows to it under its new name (the
// stream follows it by OID), and renames it back.
func (c *chaos) rename() {
	c.t.Helper()
	if c.refuse() {
		c.tryRefused("rename", "ALTER TABLE outbox RENAME TO outbox_away")
		return
	}
	c.must(c.guard, "ALTER TABLE outbox RENAME TO outbox_away")
	for range 1 + c.rng.IntN(3) {
		c.must(false, fmt.Sprintf(`INSERT INTO outbox_away (type, source, aggregate_type, aggregate_id, data)
			VALUES ('chaos.renamed', '/chaos', 'agg', 'chaos', '{"agg":"chaos","seq":%d}')`, c.chaosSeq))
		c.chaosSeq++
		time.Sleep(time.Duration(c.rng.IntN(300)) * time.Millisecond)
	}
	c.must(false, "ALTER TABLE outbox_away RENAME TO outbox")
	c.ops["rename"]++
}

// attach attaches the next range partition, ahead of the clock.
func (c *chaos) attach() {
	c.t.Helper()
	next := time.Now().Unix() + 2
	next = (next + chaosPart - 1) / chaosPart * chaosPart
	if n := len(c.parts); n > 0 && c.parts[n-1]+chaosPart > next {
		next = c.parts[n-1] + chaosPart
	}
	name := chaosPartName(next)
	c.must(false, fmt.Sprintf("CREATE TABLE %s (LIKE outbox INCLUDING DEFAULTS)", name),
		fmt.Sprintf("ALTER TABLE outbox ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%s)", name, chaosTS(next), chaosTS(next+chaosPart)))
	c.parts = append(c.parts, next)
	c.ops["attach"]++
}

// detach detaches the oldest range partition once the clock is well past it,
// keeps its rows in the graveyard and drops it.
func (c *chaos) detach() {
	c.t.Helper()
	if len(c.parts) == 0 || c.parts[0]+chaosPart > time.Now().Unix()-2*chaosPart {
		return
	}
	name := chaosPartName(c.parts[0])
	c.must(false, "ALTER TABLE outbox DETACH PARTITION "+name, chaosBury(name), "DROP TABLE "+name)
	c.parts = c.parts[1:]
	c.ops["detach"]++
}

// unpublish drops the outbox from the publication, lets rows be written,
// and in half the cases adds it back before outbox-cdc stops.
func (c *chaos) unpublish() {
	c.t.Helper()
	drop := "ALTER PUBLICATION outbox_cdc DROP TABLE outbox"
	if c.refuse() {
		c.tryRefused("unpublish", drop)
		return
	}
	from := c.dbClock()
	c.must(c.guard, drop)
	after := c.e.currentLSN()
	what := "dropped from the publication"
	if c.rng.IntN(2) == 0 {
		time.Sleep(time.Duration(100+c.rng.IntN(700)) * time.Millisecond)
		c.must(false, "ALTER PUBLICATION outbox_cdc ADD TABLE outbox")
		what += " and added back"
	}
	c.ops["unpublish"]++
	c.namedStop(from, after, what)
}

// recreate drops the outbox (keeping its rows in the graveyard) and creates
// it again with the same partitions, in half the cases adding it to the
// publication in the same transaction.
func (c *chaos) recreate() {
	c.t.Helper()
	stmts := []string{"LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE", chaosBury("outbox"), "DROP TABLE outbox"}
	if c.refuse() {
		c.tryRefused("recreate", stmts...)
		return
	}
	stmts = append(stmts, strings.Split(strings.TrimSpace(chaosOutboxDDL(c.parts)), ";\n")...)
	what := "dropped and created again"
	if c.rng.IntN(2) == 0 {
		stmts = append(stmts, "ALTER PUBLICATION outbox_cdc ADD TABLE outbox")
		what += ", in the publication"
	}
	from := c.dbClock()
	c.must(c.guard, stmts...)
	after := c.e.currentLSN()
	c.ops["recreate"]++
	c.namedStop(from, after, what)
}

// namedStop waits for outbox-cdc to stop on the change made at from (DB
// clock; the WAL was at after once it had committed), asserts the exit and
// the message, then recovers as the docs say: setup, backfill from the time
// in the error, restart.
func (c *chaos) namedStop(from time.Time, after uint64, what string) {
	c.t.Helper()
	t := c.t
	code := c.p.exited(t, time.Minute)
	log := c.p.log()
	var msg string
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, "outbox-cdc: ") {
			msg = l
		}
	}
	if code != 1 || msg == "" {
		t.Fatalf("outbox %s: outbox-cdc exited %d, want 1 with a named error; log:\n%s", what, code, tail(log, 20))
	}
	for _, w := range []string{"outbox table public.outbox", "publication outbox_cdc", "outbox-cdc backfill"} {
		if !strings.Contains(msg, w) {
			t.Fatalf("outbox %s: the error does not say %q:\n%s", what, w, msg)
		}
	}
	m := driftSince.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("outbox %s: the error does not say since when to backfill:\n%s", what, msg)
	}
	since, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		t.Fatalf("outbox %s: the error's time %q: %v", what, m[1], err)
	}
	end := c.ended("named stop: outbox " + what)
	if end.confirmed > after {
		t.Fatalf("outbox %s: confirmed_flush_lsn %X passed %X, where the WAL was once the change had committed", what, end.confirmed, after)
	}

	// The operator's recovery: setup accepts the outbox as it is now (adds
	// it back, records a recreated table), then backfill from the time in
	// the error.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := c.e.cliEnv(ctx, c.setupEnv, "setup")
	if err != nil || !strings.Contains(out, "backfill") {
		t.Fatalf("outbox %s: setup: %v, want it to accept the outbox and point at backfill:\n%s", what, err, out)
	}
	c.windows = append(c.windows, chaosWindow{from: from, to: c.dbClock(), what: what})
	b := chaosBackfill{since: since, from: len(c.out.read(t))}
	out, code = c.e.backfill("--since", m[1])
	if code != 0 {
		t.Fatalf("outbox %s: backfill --since %s exited %d:\n%s", what, m[1], code, out)
	}
	b.to = len(c.out.read(t))
	c.backfills = append(c.backfills, b)
	t.Logf("outbox %s: named stop; backfilled %d events since %s", what, b.to-b.from, m[1])
	c.start()
}

// start starts outbox-cdc and waits until it streams: the changes are made
// while it streams. (A change made while it is stopped or starting is
// caught at start, but that error cannot say since when to backfill.)
func (c *chaos) start() {
	c.t.Helper()
	c.p = c.e.start()
	waitFor(c.t, 30*time.Second, "outbox-cdc to stream", func() bool {
		c.running()
		_, a := c.e.slot()
		return a && strings.Contains(c.p.log(), "msg=streaming")
	})
}

// ended records where a run of outbox-cdc ended, once the server released
// the slot.
func (c *chaos) ended(why string) chaosEnd {
	c.t.Helper()
	waitFor(c.t, 15*time.Second, "the slot to be released", func() bool { _, a := c.e.slot(); return !a })
	conf, _ := c.e.slot()
	end := chaosEnd{confirmed: conf, lines: len(c.out.read(c.t)), why: why}
	c.ends = append(c.ends, end)
	return end
}

// chaosRow is one row the database says was committed.
type chaosRow struct {
	id, agg            string
	seq                int
	created, committed time.Time
}

// truth reads every committed outbox row: those in the outbox and those the
// test moved to the graveyard.
func (c *chaos) truth() []chaosRow {
	c.t.Helper()
	rows, err := c.e.pool.Query(context.Background(), `
		SELECT id::text, aggregate_id, (data->>'seq')::int, created_at, pg_xact_commit_timestamp(xmin) FROM outbox
		UNION ALL SELECT id::text, aggregate_id, (data->>'seq')::int, created_at, committed FROM chaos_graveyard`)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	var out []chaosRow
	for rows.Next() {
		var r chaosRow
		var committed *time.Time
		if err := rows.Scan(&r.id, &r.agg, &r.seq, &r.created, &committed); err != nil {
			c.t.Fatal(err)
		}
		if committed == nil {
			c.t.Fatalf("row %s has no commit timestamp (track_commit_timestamp is off?)", r.id)
		}
		r.committed = *committed
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// inWindow tells whether r may have been written outside the publication.
func (c *chaos) inWindow(r chaosRow) bool {
	for _, w := range c.windows {
		if !r.committed.Before(w.from) && !r.created.After(w.to) {
			return true
		}
	}
	return false
}

// finish waits for every committed row to be delivered, stops outbox-cdc and
// checks the delivery against the database.
func (c *chaos) finish(produced, failed int64, d time.Duration) {
	t := c.t
	truth := c.truth()
	if len(truth) < 500 {
		t.Fatalf("only %d rows were written under load (producer: %d committed, %d failed transactions)", len(truth), produced, failed)
	}
	missing := func() []chaosRow {
		got := map[string]bool{}
		for _, l := range c.out.read(t) {
			got[l.ID] = true
		}
		var out []chaosRow
		for _, r := range truth {
			if !got[r.id] {
				out = append(out, r)
			}
		}
		return out
	}
	var miss []chaosRow
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		if miss = missing(); len(miss) == 0 {
			break
		}
		if time.Now().After(deadline) {
			c.unaccounted(miss)
		}
		c.running()
	}
	end := c.e.currentLSN()
	waitFor(t, 30*time.Second, "the slot to confirm everything", func() bool { conf, _ := c.e.slot(); return conf >= end })
	c.p.stop(t)
	lines := c.out.read(t)

	byID := map[string]chaosRow{}
	perAgg := map[string][]int{}
	for _, r := range truth {
		if _, dup := byID[r.id]; dup {
			t.Fatalf("row %s is twice in the database's truth", r.id)
		}
		byID[r.id] = r
		perAgg[r.agg] = append(perAgg[r.agg], r.seq)
	}
	// The truth is what the writers committed: per aggregate, seq 0..n-1
	// once each (a writer advances seq only on commit).
	for agg, seqs := range perAgg {
		slices.Sort(seqs)
		for i, s := range seqs {
			if s != i {
				t.Fatalf("aggregate %s: the database holds seq %d where %d was expected: the writers' truth is inconsistent", agg, s, i)
			}
		}
	}
	for _, id := range c.refused {
		if _, ok := byID[id]; ok {
			t.Fatalf("row %s, written in a transaction the guard refused, is in the outbox", id)
		}
	}
	refused := map[string]bool{}
	for _, id := range c.refused {
		refused[id] = true
	}

	streamed, backfilled := map[string]int{}, map[string]int{}
	firstStreamed := map[string]int{}
	lastSeq := map[string]int{}
	for i, l := range lines {
		if l.bad {
			t.Fatalf("output line %d is not an event", i+1)
		}
		r, ok := byID[l.ID]
		if !ok {
			if refused[l.ID] {
				t.Fatalf("event %s was delivered although the guard refused the transaction that wrote it", l.ID)
			}
			t.Fatalf("event %s (line %d) is no row the database committed", l.ID, i+1)
		}
		if l.Data.Agg != r.agg || l.Data.Seq != r.seq || l.PK != r.agg {
			t.Fatalf("event %s: partitionkey %q data %+v, the row says %s/%d", l.ID, l.PK, l.Data, r.agg, r.seq)
		}
		if l.LSN == "" {
			backfilled[l.ID]++
			continue
		}
		streamed[l.ID]++
		if streamed[l.ID] > 1 {
			continue
		}
		firstStreamed[l.ID] = i
		if last, seen := lastSeq[r.agg]; seen && r.seq <= last {
			t.Fatalf("aggregate %s: seq %d streamed (line %d) after seq %d: commit order broken", r.agg, r.seq, i+1, last)
		}
		lastSeq[r.agg] = r.seq
	}

	// Every committed row was delivered; one that was not streamed was
	// written while the outbox was out of the publication, and backfilled.
	onlyBackfilled := 0
	var unstreamed []chaosRow
	for _, r := range truth {
		if streamed[r.id] > 0 {
			continue
		}
		if backfilled[r.id] == 0 {
			c.unaccounted([]chaosRow{r})
		}
		if !c.inWindow(r) {
			unstreamed = append(unstreamed, r)
		}
		onlyBackfilled++
	}
	if len(unstreamed) > 0 {
		r := unstreamed[0]
		t.Fatalf("%d rows written while the outbox was in the publication were not streamed (only backfilled), e.g. %s (%s/%d, created %s, committed %s); windows: %s",
			len(unstreamed), r.id, r.agg, r.seq, r.created.Format(time.RFC3339Nano), r.committed.Format(time.RFC3339Nano), c.windowList())
	}

	// A row streamed twice was after the confirmed position of a run that
	// ended after its first delivery.
	dups := 0
	for id, n := range streamed {
		if n == 1 {
			continue
		}
		dups += n - 1
		lsn := parseLSN(t, lines[firstStreamed[id]].LSN)
		if !slices.ContainsFunc(c.ends, func(e chaosEnd) bool { return firstStreamed[id] < e.lines && lsn >= e.confirmed }) {
			t.Fatalf("event %s (commit LSN %X) was streamed %d times, but it was not after the confirmed position of a run that ended after its first delivery", id, lsn, n)
		}
	}

	// Each backfill published in created_at order per aggregate, and only
	// rows from its time on.
	copies := 0
	for _, b := range c.backfills {
		last := map[string]int{}
		for i, l := range lines[b.from:b.to] {
			copies++
			r := byID[l.ID]
			if l.LSN != "" {
				t.Fatalf("line %d, written during a backfill, carries pglsn %s", b.from+i+1, l.LSN)
			}
			if r.created.Before(b.since) {
				t.Fatalf("backfill --since %s published %s, created %s", b.since.Format(time.RFC3339Nano), r.id, r.created.Format(time.RFC3339Nano))
			}
			if s, seen := last[r.agg]; seen && r.seq <= s {
				t.Fatalf("backfill --since %s: aggregate %s seq %d after seq %d", b.since.Format(time.RFC3339Nano), r.agg, r.seq, s)
			}
			last[r.agg] = r.seq
		}
	}
	if n := sum(backfilled); copies != n {
		t.Fatalf("%d events without pglsn outside the backfills", n-copies)
	}

	stops := 0
	for _, e := range c.ends {
		if strings.HasPrefix(e.why, "named stop") {
			stops++
		}
	}
	var ops []string
	for op, n := range c.ops {
		ops = append(ops, fmt.Sprintf("%s %d", op, n))
	}
	slices.Sort(ops)
	t.Logf("ddl chaos: %d events (%d streamed, %d only by backfill, %d refused with the guard's refusal), %d duplicates streamed after a confirmed position, %d backfilled copies; %d named stops, %d faults (%s) over %v; the producer saw %d failed transactions",
		len(truth), len(truth)-onlyBackfilled, onlyBackfilled, len(c.refused), dups, copies, stops, sum(c.ops), strings.Join(ops, ", "), d, failed)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func (c *chaos) windowList() string {
	var ws []string
	for _, w := range c.windows {
		ws = append(ws, fmt.Sprintf("%s [%s, %s]", w.what, w.from.Format(time.RFC3339Nano), w.to.Format(time.RFC3339Nano)))
	}
	return strings.Join(ws, "; ")
}

// unaccounted fails the test on rows that were committed and never
// delivered, with what the test knows about them.
func (c *chaos) unaccounted(rows []chaosRow) {
	c.t.Helper()
	var b strings.Builder
	for i, r := range rows {
		if i == 10 {
			fmt.Fprintf(&b, "  ... and %d more\n", len(rows)-i)
			break
		}
		fmt.Fprintf(&b, "  %s %s/%d created %s committed %s in a window: %v\n", r.id, r.agg, r.seq,
			r.created.Format(time.RFC3339Nano), r.committed.Format(time.RFC3339Nano), c.inWindow(r))
	}
	c.t.Fatalf("%d committed rows were never delivered:\n%swindows: %s\nbackfills: %+v\nends: %+v", len(rows), b.String(), c.windowList(), c.backfills, c.ends)
}

// chaosLine is one line of the file sink's output, decoded as far as the
// checks need.
type chaosLine struct {
	ID   string  `json:"id"`
	LSN  string  `json:"pglsn"`
	PK   string  `json:"partitionkey"`
	Data seqData `json:"data"`
	bad  bool
}

// chaosReader reads the file sink's output as it grows, one complete line at
// a time (a line a killed process tore is completed by the next process's
// first line, and decoded from where that starts).
type chaosReader struct {
	path  string
	off   int64
	lines []chaosLine
}

func (r *chaosReader) read(t *testing.T) []chaosLine {
	t.Helper()
	f, err := os.Open(r.path)
	if os.IsNotExist(err) {
		return r.lines
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(r.off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return r.lines
	}
	for _, line := range bytes.Split(b[:end], []byte{'\n'}) {
		var l chaosLine
		if err := json.Unmarshal(line, &l); err != nil {
			i := bytes.LastIndex(line, []byte(`{"specversion":`))
			if i <= 0 || json.Unmarshal(line[i:], &l) != nil {
				l = chaosLine{bad: true}
			}
		}
		r.lines = append(r.lines, l)
	}
	r.off += int64(end + 1)
	return r.lines
}
