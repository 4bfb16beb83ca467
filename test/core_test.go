package test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

type seqData struct {
	Agg string `json:"agg"`
	Seq int    `json:"seq"`
}

// produce commits n events in transactions of 1..maxTx rows over aggs
// aggregates, one transaction at a time so that commit order is known: seq
// counts per aggregate in commit order. pause is slept between transactions.
func produce(ctx context.Context, e *env, n, maxTx, aggs int, pause time.Duration, rng *rand.Rand) error {
	return produceFrom(ctx, e, make([]int, aggs), n, maxTx, pause, rng)
}

// produceFrom is produce continuing the per-aggregate sequences in next.
func produceFrom(ctx context.Context, e *env, next []int, n, maxTx int, pause time.Duration, rng *rand.Rand) error {
	_, err := produceCounted(ctx, e, next, n, maxTx, pause, rng)
	return err
}

// produceCounted is produceFrom that also returns how many events were
// committed, also when it fails part-way (a Postgres restart): the
// transactions committed before the failure count, and so does one whose
// COMMIT the server carried out although the client never heard the answer.
// next is advanced exactly by what committed, so a retry continues the
// per-aggregate sequences without a gap or a reused number.
func produceCounted(ctx context.Context, e *env, next []int, n, maxTx int, pause time.Duration, rng *rand.Rand) (int, error) {
	aggs := len(next)
	sent := 0
	for sent < n {
		k := min(1+rng.IntN(maxTx), n-sent)
		trial := slices.Clone(next) // applied only once the transaction commits
		rows := make([][]any, k)
		firstSeq := 0
		for i := range rows {
			a := rng.IntN(aggs)
			data, _ := json.Marshal(seqData{Agg: fmt.Sprintf("a%d", a), Seq: trial[a]})
			if i == 0 {
				firstSeq = trial[a]
			}
			trial[a]++
			rows[i] = []any{"test.event", "/test", "agg", fmt.Sprintf("a%d", a), string(data)}
		}
		tx, err := e.pool.Begin(ctx)
		if err != nil {
			return sent, err
		}
		var xid int64
		if err := tx.QueryRow(ctx, "SELECT txid_current()").Scan(&xid); err != nil {
			tx.Rollback(ctx)
			return sent, err
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"outbox"}, []string{"type", "source", "aggregate_type", "aggregate_id", "data"}, pgx.CopyFromRows(rows))
		if err != nil {
			tx.Rollback(ctx)
			return sent, err
		}
		if err := tx.Commit(ctx); err != nil {
			// The connection may have broken after the server wrote the
			// commit record: ask the server what became of the transaction.
			committed, serr := e.txCommitted(ctx, xid, rows[0][3].(string), firstSeq)
			if serr != nil {
				return sent, fmt.Errorf("commit of transaction %d failed (%v) and its outcome is unknown: %w", xid, err, serr)
			}
			if !committed {
				return sent, err
			}
		}
		copy(next, trial)
		sent += k
		if pause > 0 {
			time.Sleep(pause)
		}
	}
	return sent, nil
}

// txCommitted reports whether the transaction xid, whose first row is
// (agg, seq), committed. It asks the server until it answers, for up to two
// minutes: a COMMIT cut off by a server crash has an outcome only the server
// knows once it is back.
//
// txid_status alone is not the truth after a crash. A transaction whose WAL
// never reached disk leaves no trace, so recovery hands its xid to the next
// transaction, and txid_status then reports that one's outcome: "committed"
// for rows that are not there. So a "committed" is checked against the rows,
// which commit or vanish together.
func (e *env) txCommitted(ctx context.Context, xid int64, agg string, seq int) (bool, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var status *string
		err := e.pool.QueryRow(ctx, "SELECT txid_status($1)", xid).Scan(&status)
		if err == nil {
			if status == nil {
				return false, fmt.Errorf("transaction %d is too old for txid_status", xid)
			}
			switch *status {
			case "committed":
				var there bool
				err = e.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM outbox WHERE aggregate_id = $1 AND data->>'seq' = $2)",
					agg, strconv.Itoa(seq)).Scan(&there)
				if err == nil {
					return there, nil
				}
			case "aborted":
				return false, nil
			}
			// "in progress": the server has not finished it yet.
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, fmt.Errorf("outcome of transaction %d: %v", xid, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkDelivery asserts that every one of total events arrived, with the
// sequence numbers per aggregate contiguous from 0 (none lost), and that
// first deliveries per aggregate are in commit order. It is checkDeliveryOf
// against the rows the events themselves name. It returns the first line
// index and the delivery count of every event id.
func checkDelivery(t *testing.T, evs []delivered, total int) (first map[string]int, count map[string]int) {
	t.Helper()
	rows := map[string]seqData{}
	seqs := map[string][]int{}
	for _, d := range evs {
		if _, seen := rows[d.ID]; seen {
			continue
		}
		var sd seqData
		if err := json.Unmarshal(d.Data, &sd); err != nil {
			t.Fatalf("event %s: data %s: %v", d.ID, d.Data, err)
		}
		rows[d.ID] = sd
		seqs[sd.Agg] = append(seqs[sd.Agg], sd.Seq)
	}
	for agg, s := range seqs {
		slices.Sort(s)
		for want, seq := range s {
			switch {
			case seq < want:
				t.Fatalf("aggregate %s: seq %d delivered under two event ids", agg, seq)
			case seq > want:
				t.Fatalf("aggregate %s: seq %d never delivered (the next delivered is %d): event lost", agg, want, seq)
			}
		}
	}
	first, count = checkDeliveryOf(t, evs, rows)
	if len(first) != total {
		t.Fatalf("delivered %d distinct events, want %d", len(first), total)
	}
	return first, count
}

// outboxSeqs returns every outbox row's id with the aggregate and sequence
// number its data holds.
func (e *env) outboxSeqs(t *testing.T) map[string]seqData {
	t.Helper()
	for try := 0; ; try++ {
		rows, err := e.pool.Query(context.Background(), "SELECT id::text, data->>'agg', (data->>'seq')::int FROM outbox")
		if err == nil {
			m := map[string]seqData{}
			for rows.Next() {
				var id string
				var sd seqData
				if err = rows.Scan(&id, &sd.Agg, &sd.Seq); err != nil {
					break
				}
				m[id] = sd
			}
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
			if err == nil {
				return m
			}
		}
		if try == 50 {
			t.Fatalf("read outbox rows: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// seqGaps names the sequence numbers below next[a] (aggregate "a<a>") that
// rows lacks: the first 20, and how many in all.
func seqGaps(rows map[string]seqData, next []int) string {
	have := map[seqData]bool{}
	for _, sd := range rows {
		have[sd] = true
	}
	var gaps []string
	n := 0
	for a, end := range next {
		for q := 0; q < end; q++ {
			if sd := (seqData{Agg: fmt.Sprintf("a%d", a), Seq: q}); !have[sd] {
				n++
				if len(gaps) < 20 {
					gaps = append(gaps, fmt.Sprintf("%s/%d", sd.Agg, sd.Seq))
				}
			}
		}
	}
	return fmt.Sprintf("%d sequence numbers the producer counted are not in the outbox: %v", n, gaps)
}

// checkDeliveryOf is checkDelivery against the rows the outbox holds (id →
// aggregate and sequence): every row delivered, nothing else, and per
// aggregate the first deliveries in the rows' sequence order.
func checkDeliveryOf(t *testing.T, evs []delivered, rows map[string]seqData) (first map[string]int, count map[string]int) {
	t.Helper()
	order := map[string][]int{}
	for _, sd := range rows {
		order[sd.Agg] = append(order[sd.Agg], sd.Seq)
	}
	for _, s := range order {
		slices.Sort(s)
	}
	first, count = map[string]int{}, map[string]int{}
	pos := map[string]int{}
	for i, d := range evs {
		count[d.ID]++
		if count[d.ID] > 1 {
			continue
		}
		first[d.ID] = i
		sd, ok := rows[d.ID]
		if !ok {
			t.Fatalf("event %s (line %d) is not an outbox row", d.ID, i)
		}
		if sd.Agg != d.PartitionKey {
			t.Fatalf("event %s: partitionkey %q, the row says aggregate %q", d.ID, d.PartitionKey, sd.Agg)
		}
		want := order[sd.Agg][pos[sd.Agg]]
		if sd.Seq != want {
			t.Fatalf("aggregate %s: first delivery of seq %d (line %d) where seq %d was next: order broken or event lost", sd.Agg, sd.Seq, i, want)
		}
		pos[sd.Agg]++
	}
	if len(first) != len(rows) {
		t.Fatalf("delivered %d distinct events, the outbox holds %d rows", len(first), len(rows))
	}
	return first, count
}

// Acceptance: kill -9 at random moments under load loses nothing, keeps
// per-aggregate order, and re-sends only what was after the confirmed
// position.
func TestKillUnderLoadLosesNothing(t *testing.T) {
	e := newEnv(t, "")
	const total, kills = 50000, 5
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	t.Logf("seed time %v", time.Now())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prodDone := make(chan error, 1)
	prodRng := rand.New(rand.NewPCG(rng.Uint64(), 2)) // the producer's own: rand.Rand is not safe for concurrent use
	go func() { prodDone <- produce(ctx, e, total, 500, 20, 40*time.Millisecond, prodRng) }()

	type kill struct {
		confirmed uint64
		lines     int // lines in the file when the process died
	}
	var killed []kill
	p := e.start()
	for len(killed) < kills {
		time.Sleep(time.Duration(700+rng.IntN(1800)) * time.Millisecond)
		p.kill()
		waitFor(t, 10*time.Second, "slot to become inactive", func() bool { _, active := e.slot(); return !active })
		c, _ := e.slot()
		killed = append(killed, kill{confirmed: c, lines: e.countLines()})
		t.Logf("kill %d: confirmed %X, %d lines", len(killed), c, killed[len(killed)-1].lines)
		p = e.start()
	}
	if err := <-prodDone; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 120*time.Second, "all events", func() bool { return e.countLines() >= total })
	end := e.currentLSN()
	waitFor(t, 30*time.Second, "slot to confirm the last transaction", func() bool { c, _ := e.slot(); return c >= end })
	p.stop(t)

	evs := e.readEvents()
	first, count := checkDelivery(t, evs, total)
	dups := 0
	for id, n := range count {
		if n == 1 {
			continue
		}
		dups += n - 1
		d := evs[first[id]]
		lsn := parseLSN(t, d.LSN)
		ok := false
		for _, k := range killed {
			if first[id] < k.lines && lsn >= k.confirmed {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("event %s (commit LSN %s) was delivered %d times, but it was not after the confirmed position of any kill it preceded", id, d.LSN, n)
		}
	}
	t.Logf("%d events, %d lines, %d duplicates after %d kills", total, len(evs), dups, kills)
}

// Acceptance: an idle outbox on a busy server does not pin WAL.
func TestIdleOutboxFollowsServerWAL(t *testing.T) {
	e := newEnv(t, "")
	e.exec("CREATE TABLE busy (id serial primary key, v text)")
	p := e.start()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	start, _ := e.slot()
	for i := 0; i < 40; i++ {
		e.exec("INSERT INTO busy (v) SELECT repeat('x', 200) FROM generate_series(1, 500)")
		time.Sleep(50 * time.Millisecond)
	}
	target := e.currentLSN()
	waitFor(t, 30*time.Second, "confirmed_flush_lsn to follow the busy table's WAL", func() bool {
		c, _ := e.slot()
		return c >= target
	})
	c, _ := e.slot()
	if c <= start {
		t.Fatalf("confirmed_flush_lsn did not move: %X", c)
	}
	if n := e.countLines(); n != 0 {
		t.Fatalf("%d events delivered from a table outside the outbox", n)
	}
	p.stop(t)
}

// Acceptance: ALTER TABLE on the outbox while streaming needs no restart and
// loses nothing.
func TestAlterTableWhileStreaming(t *testing.T) {
	e := newEnv(t, "")
	p := e.start()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	insert := func(n, from int) {
		e.exec(`INSERT INTO outbox (type, source, aggregate_id, data)
		        SELECT 'alter.test', '/t', 'a', jsonb_build_object('agg', 'a', 'seq', g) FROM generate_series($1::int, $2::int) g`, from, from+n-1)
	}
	insert(100, 0)
	e.exec("ALTER TABLE outbox ADD COLUMN tenant text DEFAULT 'acme'")
	insert(100, 100)
	e.exec("ALTER TABLE outbox DROP COLUMN subject")
	insert(100, 200)
	e.exec("ALTER TABLE outbox ADD COLUMN subject text")
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, subject, data) VALUES ('alter.test', '/t', 'a', 'with-subject', '{"agg":"a","seq":300}')`)
	waitFor(t, 30*time.Second, "301 events", func() bool { return e.countLines() >= 301 })
	evs := e.readEvents()
	checkDelivery(t, evs, 301)
	if got := evs[len(evs)-1].Subject; got != "with-subject" {
		t.Fatalf("subject after re-adding the column = %q", got)
	}
	if log := p.log(); strings.Contains(log, "reconnecting") {
		t.Fatalf("the stream reconnected during ALTER TABLE:\n%s", tail(log, 20))
	}
	p.stop(t)
}

// Acceptance: a second instance waits as a hot standby and takes over when the
// first dies, with no loss.
func TestHotStandbyTakesOver(t *testing.T) {
	e := newEnv(t, "")
	a := e.start()
	waitFor(t, 10*time.Second, "first instance streaming", func() bool { _, act := e.slot(); return act })
	b := e.start()
	waitFor(t, 10*time.Second, "second instance in standby", func() bool { return strings.Contains(b.log(), "hot standby") })
	ctx := context.Background()
	if err := produce(ctx, e, 2000, 50, 5, 0, rand.New(rand.NewPCG(1, 2))); err != nil {
		t.Fatal(err)
	}
	a.kill()
	killedAt := time.Now()
	waitFor(t, 15*time.Second, "the standby to take over", func() bool { return strings.Contains(b.log(), "taking over") })
	t.Logf("standby took over %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	if err := produce(ctx, e, 0, 1, 1, 0, rand.New(rand.NewPCG(1, 2))); err != nil {
		t.Fatal(err)
	}
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('after.takeover', '/t', 'z', '{"agg":"z","seq":0}')`)
	waitFor(t, 30*time.Second, "all events", func() bool {
		n := 0
		for _, d := range e.readEvents() {
			if d.Type == "after.takeover" {
				n++
			}
		}
		return n > 0
	})
	evs := e.readEvents()
	checkDelivery(t, evs, 2001)
	b.stop(t)
}

// Acceptance: bad setups fail with a message that says what to do.
func TestBadSetupIsNamed(t *testing.T) {
	p := needPostgres(t)
	ctx := context.Background()
	e := newEnv(t, "")

	write := func(name, body string) string {
		path := e.dir + "/" + name
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	run := func(cfg string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		cmd := execCommand(ctx, binary, append(args, "--config", cfg)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	base := func(url, extra string) string {
		return fmt.Sprintf("postgres: {url: %q}\nsinks: [{name: audit, type: file, path: %q}]\nhttp: {addr: \"-\"}\n%s", url, e.dir+"/x.jsonl", extra)
	}

	if err := p.CreateRole(ctx, "norepl", false); err != nil {
		t.Fatal(err)
	}
	e.exec("GRANT SELECT ON outbox TO norepl")
	port, _ := freePort()

	cases := []struct {
		name string
		cfg  string
		args []string
		want []string
	}{
		{"unknown config key", write("k.yaml", "postgres: {url: x, urll: y}\n"), []string{"run"}, []string{"unknown config key urll"}},
		{"unreachable server", write("u.yaml", base(fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x?connect_timeout=3", port), "")), []string{"run"},
			[]string{"cannot connect", fmt.Sprint(port)}},
		{"missing table", write("t.yaml", base(p.URL(e.db), "outbox: {tables: [{name: public.nope}]}\n")), []string{"run"},
			[]string{"outbox table public.nope does not exist", "outbox-cdc setup"}},
		{"missing replication privilege", write("r.yaml", base(p.UserURL("norepl", e.db), "")), []string{"run"},
			[]string{`role "norepl" lacks the REPLICATION attribute`, "ALTER ROLE"}},
		{"sink cannot be opened", write("s.yaml", fmt.Sprintf("postgres: {url: %q}\nsinks: [{name: audit, type: file, path: /nonexistent/dir/x.jsonl}]\n", p.URL(e.db))), []string{"run"},
			[]string{"sink audit: cannot open /nonexistent/dir/x.jsonl"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(tc.cfg, tc.args...)
			if err == nil {
				t.Fatalf("exit 0, want failure; output:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output does not say %q:\n%s", w, out)
				}
			}
		})
	}

	t.Run("wal_level not logical", func(t *testing.T) {
		replica, err := startReplicaLevelPostgres(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer replica.Close()
		cfg := write("w.yaml", base(replica.URL("postgres"), ""))
		for _, cmd := range []string{"setup", "run"} {
			out, err := run(cfg, cmd)
			if err == nil {
				t.Fatalf("%s: exit 0 with wal_level=replica:\n%s", cmd, out)
			}
			for _, w := range []string{`wal_level is "replica"`, "wal_level = logical", "restart PostgreSQL"} {
				if !strings.Contains(out, w) {
					t.Fatalf("%s: output does not say %q:\n%s", cmd, w, out)
				}
			}
		}
	})
}
