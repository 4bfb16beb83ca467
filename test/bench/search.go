package main

// The admin console's search on a large outbox (issue 11, acceptance 3):
// -search-rows rows over -search-aggregates aggregate ids, written after
// `outbox-cdc setup` created the search indexes (admin.enabled), streamed
// by a running outbox-cdc with the admin API on; then -searches searches by
// aggregate id through the API on loopback, as the console and `outbox-cdc
// events find` send them. Reported: the server time of the first page (the
// API's Server-Timing, the query as the handler measures it), the HTTP
// round trip, the next page (keyset cursor), the index scans the searches
// made, and the plan PostgreSQL chose for the very query the API ran (read
// back from pg_stat_activity, then EXPLAIN ANALYZE).
//
//	go run ./test/bench -throughput=false -bigtx 0 -latency '' -search-rows 1000000

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

var (
	searchRows = flag.Int("search-rows", 1000000, "outbox rows for the console search measurement (0 skips it)")
	searchAggs = flag.Int("search-aggregates", 1000, "distinct aggregate ids among -search-rows")
	searchN    = flag.Int("searches", 200, "searches by aggregate id timed in the console search measurement")
)

// searchTiming is one search: the server time the API reports and the
// HTTP round trip, in milliseconds.
type searchTiming struct{ server, wall float64 }

func (b *bench) consoleSearch(ctx context.Context) error {
	b.seq++
	db := fmt.Sprintf("bench%d", b.seq)
	if err := b.pg.CreateDatabase(ctx, db); err != nil {
		return err
	}
	port, err := harness.FreePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	secret := make([]byte, 16)
	rand.Read(secret)
	token := hex.EncodeToString(secret)
	cfg := filepath.Join(b.work, "search.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`postgres: {url: %q, slot: cdcsearch, publication: outbox_cdc}
sinks:
  - {name: out, type: stdout}
http: {addr: %q}
admin:
  enabled: true
  tokens: [{name: bench, role: viewer, token: %q}]
log: {level: warn}
`, b.pg.URL(db), addr, token)), 0o600); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, b.bin, "setup", "--config", cfg).CombinedOutput(); err != nil {
		return fmt.Errorf("outbox-cdc setup: %v: %s", err, out)
	}
	pool, err := pgxpool.New(ctx, b.pg.URL(db))
	if err != nil {
		return err
	}
	defer pool.Close()

	// The rows: one transaction per 100,000, times spread over the last
	// hours (one row a millisecond), ids from gen_random_uuid().
	t0 := time.Now()
	n := *searchRows
	for done := 0; done < n; done += 100000 {
		if _, err := pool.Exec(ctx, `INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data, created_at)
			SELECT 'order.' || (ARRAY['created', 'paid', 'shipped', 'delivered'])[1 + g % 4], '/bench', 'order', 'order-' || (g % $3::int),
				jsonb_build_object('seq', g, 'payload', 'abcdefghijklmnopqrstuvwxyz0123456789'),
				now() - make_interval(secs => ($4::int - g) / 1000.0)
			FROM generate_series($1::int, $2::int) g`, done, min(done+100000, n)-1, *searchAggs, n); err != nil {
			return err
		}
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE outbox"); err != nil {
		return err
	}
	var end string
	if err := pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&end); err != nil {
		return err
	}
	loaded := time.Since(t0)

	// outbox-cdc streams them (to /dev/null) and serves the API.
	run := exec.CommandContext(ctx, b.bin, "run", "--config", cfg)
	var stderr strings.Builder
	run.Stderr = &stderr
	if err := run.Start(); err != nil {
		return err
	}
	defer func() { run.Process.Signal(syscall.SIGTERM); run.Wait() }()
	t1 := time.Now()
	for caughtUp := false; !caughtUp; time.Sleep(100 * time.Millisecond) {
		err := pool.QueryRow(ctx, "SELECT coalesce(confirmed_flush_lsn >= $1::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = 'cdcsearch'", end).Scan(&caughtUp)
		if err != nil {
			return err
		}
		if time.Since(t1) > 10*time.Minute {
			return fmt.Errorf("outbox-cdc did not stream the %d rows within 10 minutes:\n%s", n, stderr.String())
		}
	}
	fmt.Printf("console search: %d outbox rows over %d aggregate ids written in %.1fs (search indexes in place), streamed in %.1fs\n",
		n, *searchAggs, loaded.Seconds(), time.Since(t1).Seconds())

	client := &http.Client{Timeout: 30 * time.Second}
	search := func(q url.Values) (searchTiming, string, int, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/api/v1/events?"+q.Encode(), nil)
		if err != nil {
			return searchTiming{}, "", 0, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return searchTiming{}, "", 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		wall := float64(time.Since(start).Microseconds()) / 1000
		if err != nil {
			return searchTiming{}, "", 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return searchTiming{}, "", 0, fmt.Errorf("GET /api/v1/events?%s: %s: %s", q.Encode(), resp.Status, body)
		}
		var page struct {
			Events []json.RawMessage `json:"events"`
			Next   string            `json:"next"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return searchTiming{}, "", 0, err
		}
		dur, ok := strings.CutPrefix(resp.Header.Get("Server-Timing"), "db;dur=")
		server, perr := strconv.ParseFloat(dur, 64)
		if !ok || perr != nil {
			return searchTiming{}, "", 0, fmt.Errorf("GET /api/v1/events: no Server-Timing db;dur= header (%q)", resp.Header.Get("Server-Timing"))
		}
		return searchTiming{server: server, wall: wall}, page.Next, len(page.Events), nil
	}
	aggregate := func(i int) string { return "order-" + strconv.Itoa(i*7919%*searchAggs) }

	scans := func() (map[string]int64, int64, error) {
		// An idle backend flushes its statistics within 10s
		// (PGSTAT_IDLE_INTERVAL).
		time.Sleep(11 * time.Second)
		idx := map[string]int64{}
		rows, err := pool.Query(ctx, "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE relname = 'outbox'")
		if err != nil {
			return nil, 0, err
		}
		var name string
		var count int64
		for rows.Next() {
			if err := rows.Scan(&name, &count); err != nil {
				return nil, 0, err
			}
			idx[name] = count
		}
		var seq int64
		err = pool.QueryRow(ctx, "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'outbox'").Scan(&seq)
		return idx, seq, err
	}
	idx0, seq0, err := scans()
	if err != nil {
		return err
	}
	var first, next []searchTiming
	var cold searchTiming
	for i := 0; i <= *searchN; i++ {
		q := url.Values{"aggregate_id": {aggregate(i)}}
		st, cur, got, err := search(q)
		if err != nil {
			return err
		}
		if want := min(50, n / *searchAggs); got != want {
			return fmt.Errorf("search by aggregate id %s: %d events, want %d", aggregate(i), got, want)
		}
		if i == 0 { // the first search opens the API's connection
			cold = st
			continue
		}
		first = append(first, st)
		if cur != "" {
			q.Set("cursor", cur)
			st, _, _, err := search(q)
			if err != nil {
				return err
			}
			next = append(next, st)
		}
	}
	idx1, seq1, err := scans()
	if err != nil {
		return err
	}
	pct := func(ts []searchTiming, f func(searchTiming) float64, p float64) float64 {
		v := make([]float64, len(ts))
		for i, t := range ts {
			v[i] = f(t)
		}
		slices.Sort(v)
		return v[min(len(v)-1, int(p*float64(len(v))))]
	}
	server := func(t searchTiming) float64 { return t.server }
	wall := func(t searchTiming) float64 { return t.wall }
	fmt.Printf("console search by aggregate id, first page of 50, %d searches: server time (Server-Timing) p50 %.2f ms, p99 %.2f ms, max %.2f ms; "+
		"HTTP round trip on loopback p50 %.2f ms, p99 %.2f ms; the very first (new connection) %.2f ms server, %.2f ms round trip\n",
		len(first), pct(first, server, 0.5), pct(first, server, 0.99), pct(first, server, 1), pct(first, wall, 0.5), pct(first, wall, 0.99), cold.server, cold.wall)
	if len(next) > 0 {
		fmt.Printf("console search by aggregate id, next page (keyset cursor), %d searches: server time p50 %.2f ms, p99 %.2f ms\n",
			len(next), pct(next, server, 0.5), pct(next, server, 0.99))
	}
	var used []string
	for name, c := range idx1 {
		if d := c - idx0[name]; d > 0 {
			used = append(used, fmt.Sprintf("%s %d", name, d))
		}
	}
	slices.Sort(used)
	fmt.Printf("  index scans during the searches: %s; sequential scans of outbox: %d\n", strings.Join(used, ", "), seq1-seq0)

	// The plan of the query the API ran: its text from pg_stat_activity
	// (an idle backend shows its last statement), after one more first page.
	agg := aggregate(1)
	if _, _, _, err := search(url.Values{"aggregate_id": {agg}}); err != nil {
		return err
	}
	var sql string
	if err := pool.QueryRow(ctx, `SELECT query FROM pg_stat_activity
		WHERE application_name = 'outbox-cdc-admin' AND state = 'idle' AND query LIKE 'SELECT %ORDER BY%'
		ORDER BY state_change DESC LIMIT 1`).Scan(&sql); err != nil {
		return fmt.Errorf("the API's search query in pg_stat_activity: %w", err)
	}
	rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+sql, agg)
	if err != nil {
		return fmt.Errorf("EXPLAIN %s: %w", sql, err)
	}
	fmt.Printf("  the API's query: %s\n  its plan (aggregate id %s):\n", sql, agg)
	var line string
	for rows.Next() {
		if err := rows.Scan(&line); err != nil {
			return err
		}
		fmt.Println("    " + line)
	}
	fmt.Println()
	return rows.Err()
}
