// Command bench measures outbox-cdc end to end beside pg_recvlogical, the
// limit: PostgreSQL decoding the same WAL with pgoutput and throwing it away.
//
// It starts a throwaway cluster, creates one slot per run before loading, so
// every run reads the very same WAL, loads the events, checkpoints, then
// alternates pg_recvlogical and outbox-cdc runs and prints medians and the
// ratio. Then it streams a single 1,000,000-row transaction for peak RSS, and
// measures commit-to-delivery latency at steady rates.
//
//	go run ./test/bench [-events 500000] [-tx 100] [-runs 3] [-sinks file]
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
	"github.com/outbox-cdc/outbox-cdc/internal/schema"
)

var (
	events   = flag.Int("events", 500000, "events in the throughput run")
	txSize   = flag.Int("tx", 100, "rows per transaction in the throughput run")
	runs     = flag.Int("runs", 3, "runs of each contender (medians are reported)")
	bigTx    = flag.Int("bigtx", 1000000, "rows in the single-transaction memory run (0 skips)")
	thruRun  = flag.Bool("throughput", true, "run the throughput comparison (false: only -bigtx and -latency)")
	latRates = flag.String("latency", "1000x1,5000x10", "latency runs: events/s x rows per transaction, comma-separated (empty skips)")
	latSecs  = flag.Int("latency-seconds", 10, "duration of each latency run")
	latWarm  = flag.Int("latency-warmup", 2, "seconds of the same load before each latency run, not measured (a broker started just before, a JVM's JIT, warm up)")
	binPath  = flag.String("bin", "bin/outbox-cdc", "outbox-cdc binary")
	aloneRun = flag.Bool("alone", true, "after the throughput table, each broker alone: the same number of events from one client, without PostgreSQL and outbox-cdc")
	sinkList = flag.String("sinks", "file,kafka,nats,redis", "sinks to measure, comma-separated: file, kafka, nats, redis")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type result struct {
	secs      float64
	cpu       float64 // user+sys seconds
	rssMiB    float64
	anonMiB   float64 // peak anonymous memory (heap, stacks); 0 unknown
	walsender float64 // the walsender's busy fraction of one core; -1 unknown
	broker    float64 // the broker process's CPU, fraction of one core; -1 none
}

func run() error {
	ctx := context.Background()
	bin, err := filepath.Abs(*binPath)
	if err != nil {
		return err
	}
	pg, err := harness.StartPostgres(ctx, harness.PostgresOptions{Fsync: true, ExtraConf: map[string]string{
		"shared_buffers": "256MB", "max_wal_size": "4GB", "checkpoint_timeout": "30min",
	}})
	if err != nil {
		return err
	}
	defer pg.Close()
	work, err := os.MkdirTemp("", "outbox-cdc-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b := &bench{pg: pg, bin: bin, work: work}
	defer func() {
		for _, f := range b.cleanup {
			f()
		}
	}()

	fmt.Printf("outbox-cdc bench: %d events in transactions of %d rows, %d runs each, PostgreSQL %d\n",
		*events, *txSize, *runs, pg.Version())
	if *thruRun {
		if err := b.throughput(ctx); err != nil {
			return err
		}
	}
	if *bigTx > 0 {
		if err := b.bigTransaction(ctx); err != nil {
			return err
		}
	}
	if *latRates != "" {
		for _, spec := range strings.Split(*latRates, ",") {
			var rate, per int
			if _, err := fmt.Sscanf(spec, "%dx%d", &rate, &per); err != nil {
				return fmt.Errorf("-latency %q: %v", spec, err)
			}
			for _, kind := range strings.Split(*sinkList, ",") {
				if err := b.latency(ctx, rate, per, kind); err != nil {
					return err
				}
				if kind == "kafka" {
					if err := b.kafkaAlone(ctx, rate, per); err != nil {
						return err
					}
				}
			}
		}
	}
	if *searchRows > 0 { // the admin console's search (search.go)
		if err := b.consoleSearch(ctx); err != nil {
			return err
		}
	}
	return nil
}

type bench struct {
	pg      *harness.Postgres
	bin     string
	work    string
	seq     int
	cleanup []func()
}

// database makes a fresh database with the outbox, its publication and the
// named slots, all created before any event is written.
func (b *bench) database(ctx context.Context, slots ...string) (string, *pgxpool.Pool, error) {
	b.seq++
	db := fmt.Sprintf("bench%d", b.seq)
	if err := b.pg.CreateDatabase(ctx, db); err != nil {
		return "", nil, err
	}
	conn, err := pgx.Connect(ctx, b.pg.URL(db))
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	if err := schema.Setup(ctx, conn, schema.Names{Slot: slots[0], Publication: "outbox_cdc", Tables: []string{"public.outbox"}}, true, func(string) {}); err != nil {
		return "", nil, err
	}
	for _, s := range slots[1:] {
		if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", s); err != nil {
			return "", nil, err
		}
	}
	pool, err := pgxpool.New(ctx, b.pg.URL(db))
	return db, pool, err
}

func (b *bench) load(ctx context.Context, pool *pgxpool.Pool, n, per int) (string, error) {
	for done := 0; done < n; done += per {
		k := min(per, n-done)
		_, err := pool.Exec(ctx, `INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data)
			SELECT 'bench.event', '/bench', 'order', 'order-' || (g % 50), jsonb_build_object('seq', g, 'payload', 'abcdefghijklmnopqrstuvwxyz0123456789')
			FROM generate_series($1::int, $2::int) g`, done, done+k-1)
		if err != nil {
			return "", err
		}
	}
	var end string
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return "", err
	}
	err := pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&end)
	return end, err
}

func (b *bench) throughput(ctx context.Context) error {
	sinks := strings.Split(*sinkList, ",")
	var slots []string
	for i := 0; i < *runs; i++ {
		slots = append(slots, fmt.Sprintf("recv%d", i))
		for _, k := range sinks {
			slots = append(slots, fmt.Sprintf("cdc_%s_%d", k, i))
		}
	}
	db, pool, err := b.database(ctx, slots...)
	if err != nil {
		return err
	}
	defer pool.Close()
	t0 := time.Now()
	end, err := b.load(ctx, pool, *events, *txSize)
	if err != nil {
		return err
	}
	fmt.Printf("loaded %d events in %.1fs; WAL end %s\n\n", *events, time.Since(t0).Seconds(), end)

	var recv []result
	cdc := map[string][]result{}
	for i := 0; i < *runs; i++ {
		r, err := b.recvlogical(ctx, db, fmt.Sprintf("recv%d", i), end, pool)
		if err != nil {
			return err
		}
		recv = append(recv, r)
		line := fmt.Sprintf("run %d: pg_recvlogical %.2fs (walsender %s)", i+1, r.secs, frac(r.walsender))
		for _, k := range sinks {
			y, cleanup, err := b.sinkYAML(ctx, k, fmt.Sprintf("%d", i))
			if err != nil {
				return err
			}
			c, err := b.outboxCDC(ctx, db, fmt.Sprintf("cdc_%s_%d", k, i), end, pool, y, brokerPid(k))
			cleanup()
			if err != nil {
				return err
			}
			cdc[k] = append(cdc[k], c)
			line += fmt.Sprintf(", %s %.2fs (cpu %.2fs, %.1f MiB, anon %.1f MiB, walsender %s, broker %s)", k, c.secs, c.cpu, c.rssMiB, c.anonMiB, frac(c.walsender), frac(c.broker))
		}
		fmt.Println(line)
	}
	n := float64(*events)
	rl := median(recv, func(r result) float64 { return r.secs })
	// walsender: its busy fraction of one core during the drain (from
	// /proc of the backend pg_stat_replication names); broker: the broker
	// process's CPU during the drain, in cores. Both medians.
	// cores busy: the reader's CPU over the drain plus the walsender's and
	// the broker's, in cores of the machine's runtime.NumCPU(): near that
	// number, the row is bound by the CPU the three share, and a faster
	// row needs fewer µs per event from one of them.
	fmt.Printf("\n%-26s %12s %8s %14s %12s %12s %8s %10s %10s %11s\n", "throughput (median)", "events/s", "ratio", "CPU µs/event", "peak RSS", "of it anon", "vs file", "walsender", "broker CPU", "cores busy")
	fmt.Printf("%-26s %12.0f %8s %14s %12s %12s %8s %10s %10s %11s\n", "pg_recvlogical (limit)", n/rl, "1.00", "-", "-", "-", "-",
		frac(median(recv, func(r result) float64 { return r.walsender })), "-",
		coresBusy(recv))
	fileSecs := 0.0
	if len(cdc["file"]) > 0 {
		fileSecs = median(cdc["file"], func(r result) float64 { return r.secs })
	}
	for _, k := range sinks {
		cl := median(cdc[k], func(r result) float64 { return r.secs })
		cpu := median(cdc[k], func(r result) float64 { return r.cpu })
		rss := slices.MaxFunc(cdc[k], func(a, b result) int { return cmp.Compare(a.rssMiB, b.rssMiB) }).rssMiB
		anon := slices.MaxFunc(cdc[k], func(a, b result) int { return cmp.Compare(a.anonMiB, b.anonMiB) }).anonMiB
		vsFile := "-"
		if fileSecs > 0 {
			vsFile = fmt.Sprintf("%.2f", fileSecs/cl)
		}
		fmt.Printf("%-26s %12.0f %8.2f %14.2f %9.1f MiB %9.1f MiB %8s %10s %10s %11s\n", "outbox-cdc → "+k, n/cl, rl/cl, cpu/n*1e6, rss, anon, vsFile,
			frac(median(cdc[k], func(r result) float64 { return r.walsender })),
			frac(median(cdc[k], func(r result) float64 { return r.broker })),
			coresBusy(cdc[k]))
	}
	fmt.Println()
	if *aloneRun {
		return b.brokersAlone(ctx, sinks)
	}
	return nil
}

// coresBusy returns the median over rs of the reader's, the walsender's
// and the broker's CPU during the drain, in cores, and of the machine's
// cores: "1.71 of 2".
func coresBusy(rs []result) string {
	c := median(rs, func(r result) float64 {
		v := r.cpu / r.secs
		if r.walsender > 0 {
			v += r.walsender
		}
		if r.broker > 0 {
			v += r.broker
		}
		return v
	})
	return fmt.Sprintf("%.2f of %d", c, runtime.NumCPU())
}

func median[T any](rs []T, f func(T) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// frac formats a busy fraction (cores); "-" when unknown.
func frac(f float64) string {
	if f < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", f)
}

func (b *bench) recvlogical(ctx context.Context, db, slot, end string, pool *pgxpool.Pool) (result, error) {
	cmd := exec.CommandContext(ctx, b.pg.Tool("pg_recvlogical"),
		"-d", b.pg.URL(db), "--slot", slot, "--start", "--no-loop", "-E", end,
		"-o", "proto_version=1", "-o", "publication_names=outbox_cdc", "-f", "/dev/null")
	ws := watchWalsender(ctx, pool, slot)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(t0)
	busy := ws.Stop()
	if err != nil {
		return result{}, fmt.Errorf("pg_recvlogical: %v: %s", err, out)
	}
	r := usage(wall, cmd.ProcessState)
	r.walsender, r.broker = busy, -1
	return r, nil
}

func usage(wall time.Duration, ps *os.ProcessState) result {
	r := result{secs: wall.Seconds(), cpu: (ps.UserTime() + ps.SystemTime()).Seconds()}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		r.rssMiB = float64(ru.Maxrss) / 1024
	}
	return r
}

func (b *bench) config(db, slot, sinkYAML string) (string, error) {
	path := filepath.Join(b.work, slot+".yaml")
	cfg := fmt.Sprintf("postgres: {url: %q, slot: %s, publication: outbox_cdc, status_interval: 50ms}\nsinks:\n%s\nhttp: {addr: \"-\"}\nlog: {level: warn}\n",
		b.pg.URL(db), slot, sinkYAML)
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

// outboxCDC runs the binary until the slot has confirmed end, then stops it.
// brokerPid is the broker's process (0: none, the file sink).
func (b *bench) outboxCDC(ctx context.Context, db, slot, end string, pool *pgxpool.Pool, sinkYAML string, brokerPid int) (result, error) {
	cfg, err := b.config(db, slot, sinkYAML)
	if err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, b.bin, "run", "--config", cfg)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	ws := watchWalsender(ctx, pool, slot)
	bc := startBrokerCPU(brokerPid)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		ws.Stop()
		return result{}, err
	}
	mem := watchMem(cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		var done bool
		if err := pool.QueryRow(ctx, "SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = $2", end, slot).Scan(&done); err != nil {
			cmd.Process.Kill()
			ws.Stop()
			mem.Stop()
			return result{}, err
		}
		if done {
			break
		}
		select {
		case err := <-exited:
			ws.Stop()
			mem.Stop()
			return result{}, fmt.Errorf("outbox-cdc exited before the slot confirmed %s (%v): %s", end, err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	wall := time.Since(t0)
	busy, broker := ws.Stop(), bc.Stop()
	cmd.Process.Signal(syscall.SIGTERM)
	err = <-exited
	peaks := mem.Stop()
	if err != nil {
		return result{}, fmt.Errorf("outbox-cdc: %v: %s", err, stderr.String())
	}
	r := usage(wall, cmd.ProcessState)
	r.walsender, r.broker, r.anonMiB = busy, broker, peaks.anon
	if peaks.hwm > 0 {
		r.rssMiB = peaks.hwm
	}
	return r, nil
}

func (b *bench) bigTransaction(ctx context.Context) error {
	slots := []string{"cdcbig", "recvbig", "cdclive"}
	var brokers []string
	for _, k := range strings.Split(*sinkList, ",") {
		if k != "file" {
			brokers = append(brokers, k)
			slots = append(slots, "cdcbig_"+k)
		}
	}
	db, pool, err := b.database(ctx, slots...)
	if err != nil {
		return err
	}
	defer pool.Close()
	// Live: outbox-cdc streams while the transaction is written. pgoutput
	// sends nothing of it before its COMMIT (streaming of in-progress
	// transactions is off), so what counts is the time from COMMIT to the
	// first and the last event delivered, and outbox-cdc's peak memory.
	liveOut := filepath.Join(b.work, "live.jsonl")
	cfg, err := b.config(db, "cdclive", fmt.Sprintf("  - {name: file, type: file, path: %q}", liveOut))
	if err != nil {
		return err
	}
	live := exec.CommandContext(ctx, b.bin, "run", "--config", cfg)
	var liveErr strings.Builder
	live.Stderr = &liveErr
	if err := live.Start(); err != nil {
		return err
	}
	liveMem := watchMem(live.Process.Pid)
	defer liveMem.Stop()
	for active := false; !active; time.Sleep(20 * time.Millisecond) {
		if err := pool.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = 'cdclive'").Scan(&active); err != nil {
			live.Process.Kill()
			return err
		}
	}
	t0 := time.Now()
	if _, err := pool.Exec(ctx, `INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data)
		SELECT 'bench.big', '/bench', 'order', 'a' || (g % 20), jsonb_build_object('seq', g) FROM generate_series(1, $1::int) g`, *bigTx); err != nil {
		live.Process.Kill()
		return err
	}
	committed := time.Now()
	var liveEnd string
	if err := pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&liveEnd); err != nil {
		live.Process.Kill()
		return err
	}
	var first time.Duration
	for {
		if first == 0 {
			if fi, err := os.Stat(liveOut); err == nil && fi.Size() > 0 {
				first = time.Since(committed)
			}
		}
		var done bool
		if err := pool.QueryRow(ctx, "SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = 'cdclive'", liveEnd).Scan(&done); err != nil {
			live.Process.Kill()
			return err
		}
		if done {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	last := time.Since(committed)
	live.Process.Signal(syscall.SIGTERM)
	if err := live.Wait(); err != nil {
		return fmt.Errorf("outbox-cdc: %v: %s", err, liveErr.String())
	}
	lu := usage(last, live.ProcessState)
	if hwm := liveMem.Stop().hwm; hwm > 0 {
		lu.rssMiB = hwm
	}
	os.Remove(liveOut)
	fmt.Printf("one %d-row transaction, live: INSERT+COMMIT %.2fs; from COMMIT, first event %.2fs, last event acknowledged %.2fs; outbox-cdc peak RSS %.1f MiB\n",
		*bigTx, committed.Sub(t0).Seconds(), first.Seconds(), last.Seconds(), lu.rssMiB)

	var end string
	if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
		return err
	}
	if err := pool.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&end); err != nil {
		return err
	}
	r, err := b.recvlogical(ctx, db, "recvbig", end, pool)
	if err != nil {
		return err
	}
	out := filepath.Join(b.work, "big.jsonl")
	c, err := b.outboxCDC(ctx, db, "cdcbig", end, pool, fmt.Sprintf("  - {name: file, type: file, path: %q}", out), 0)
	os.Remove(out)
	if err != nil {
		return err
	}
	fmt.Printf("one %d-row transaction: pg_recvlogical %.2fs; outbox-cdc → file %.2fs (ratio %.2f), CPU %.2f µs/event, peak RSS %.1f MiB (anon %.1f MiB)\n",
		*bigTx, r.secs, c.secs, r.secs/c.secs, c.cpu/float64(*bigTx)*1e6, c.rssMiB, c.anonMiB)
	for _, k := range brokers {
		y, cleanup, err := b.sinkYAML(ctx, k, "big")
		if err != nil {
			return err
		}
		c, err := b.outboxCDC(ctx, db, "cdcbig_"+k, end, pool, y, brokerPid(k))
		cleanup()
		if err != nil {
			return err
		}
		fmt.Printf("one %d-row transaction through %s: outbox-cdc %.2fs (ratio %.2f), CPU %.2f µs/event, peak RSS %.1f MiB (anon %.1f MiB)\n",
			*bigTx, k, c.secs, r.secs/c.secs, c.cpu/float64(*bigTx)*1e6, c.rssMiB, c.anonMiB)
	}
	fmt.Println()
	return nil
}

// latency commits rate events/s in transactions of per rows for latSecs.
// For the file sink it measures, per event, the time from COMMIT returning
// to the line appearing in the output; for every sink it also reads
// outbox-cdc's own commit-to-acknowledgement histogram.
func (b *bench) latency(ctx context.Context, rate, per int, kind string) error {
	slot := fmt.Sprintf("cdclat_%s_%d", kind, rate)
	db, pool, err := b.database(ctx, slot)
	if err != nil {
		return err
	}
	defer pool.Close()
	y, cleanup, err := b.sinkYAML(ctx, kind, "lat")
	if err != nil {
		return err
	}
	defer cleanup()
	port, err := harness.FreePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg, err := b.config(db, slot, y)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, b.bin, "run", "--config", cfg)
	cmd.Env = append(os.Environ(), "OUTBOX_CDC_HTTP_ADDR="+addr, "OUTBOX_CDC_POSTGRES_STATUS_INTERVAL=500ms")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	time.Sleep(time.Second)

	total := rate * *latSecs
	var out string
	arrivals := make(map[int]time.Time, total)
	stopTail := make(chan struct{})
	tailDone := make(chan error, 1)
	if kind == "file" {
		out = fileSinkPath(y)
		go func() { tailDone <- tailFile(out, arrivals, stopTail) }()
	} else {
		close(tailDone)
	}

	commits := make(map[int]time.Time, total)
	interval := time.Duration(float64(time.Second) * float64(per) / float64(rate))
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	// Warm up with the same load, on seqs below 0 (the file figures count
	// only the seqs committed below), and measure from the histogram's
	// state after it.
	var base histogram
	if warm := rate * *latWarm; warm > 0 {
		next := time.Now()
		for seq := -warm; seq < 0; seq += per {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(interval)
			if _, err := conn.Exec(ctx, `INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data)
				SELECT 'bench.warmup', '/bench', 'order', 'a' || (g % 50), jsonb_build_object('seq', g) FROM generate_series($1::int, $2::int) g`, seq, seq+per-1); err != nil {
				return err
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			if base, err = scrapeHistogram(addr, kind); err == nil && base.count >= float64(warm) {
				break
			}
		}
		if base.count < float64(warm) {
			return fmt.Errorf("latency run %s at %d events/s: warm-up: only %.0f of %d events acknowledged (%v); outbox-cdc said:\n%s", kind, rate, base.count, warm, err, stderr.String())
		}
	}
	next := time.Now()
	for seq := 0; seq < total; seq += per {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		if _, err := conn.Exec(ctx, `INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data)
			SELECT 'bench.latency', '/bench', 'order', 'a' || (g % 50), jsonb_build_object('seq', g) FROM generate_series($1::int, $2::int) g`, seq, seq+per-1); err != nil {
			return err
		}
		now := time.Now()
		for i := seq; i < seq+per; i++ {
			commits[i] = now
		}
	}
	// Wait until the histogram has every event.
	deadline := time.Now().Add(60 * time.Second)
	var hist histogram
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if hist, err = scrapeHistogram(addr, kind); err == nil {
			if hist = hist.minus(base); hist.count >= float64(total) {
				break
			}
		}
	}
	if hist.count < float64(total) {
		return fmt.Errorf("latency run %s at %d events/s: only %.0f of %d events acknowledged (%v); outbox-cdc said:\n%s", kind, rate, hist.count, total, err, stderr.String())
	}
	line := fmt.Sprintf("latency %-6s at %5d events/s (%2d-row transactions, %ds): commit → ack (histogram) p50 %.2f ms, p99 %.2f ms",
		kind, rate, per, *latSecs, hist.quantile(0.5)*1000, hist.quantile(0.99)*1000)
	if kind == "file" {
		time.Sleep(200 * time.Millisecond)
		close(stopTail)
		if err := <-tailDone; err != nil {
			return err
		}
		var lat []float64
		for seq, c := range commits {
			if a, ok := arrivals[seq]; ok {
				lat = append(lat, max(0, a.Sub(c).Seconds()*1000))
			}
		}
		if len(lat) > 0 {
			slices.Sort(lat)
			pct := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
			line += fmt.Sprintf("; COMMIT returned → line in file p50 %.2f ms, p99 %.2f ms, max %.2f ms", pct(0.5), pct(0.99), lat[len(lat)-1])
		}
	}
	fmt.Println(line)
	return nil
}

func fileSinkPath(sinkYAML string) string {
	i := strings.Index(sinkYAML, `path: "`)
	rest := sinkYAML[i+len(`path: "`):]
	return rest[:strings.IndexByte(rest, '"')]
}

var arrivalMu = make(chan struct{}, 1)

func arrivalCount(m map[int]time.Time) int {
	arrivalMu <- struct{}{}
	defer func() { <-arrivalMu }()
	return len(m)
}

// tailFile follows path and records when each seq first appears.
func tailFile(path string, arrivals map[int]time.Time, stop <-chan struct{}) error {
	var f *os.File
	for f == nil {
		var err error
		if f, err = os.Open(path); err != nil {
			select {
			case <-stop:
				return nil
			case <-time.After(time.Millisecond):
			}
		}
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var partial []byte
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			partial = append(partial, line...)
		}
		if err == nil {
			now := time.Now()
			var ev struct {
				Data struct {
					Seq int `json:"seq"`
				} `json:"data"`
			}
			if json.Unmarshal(partial, &ev) == nil {
				arrivalMu <- struct{}{}
				if _, ok := arrivals[ev.Data.Seq]; !ok {
					arrivals[ev.Data.Seq] = now
				}
				<-arrivalMu
			}
			partial = partial[:0]
			continue
		}
		select {
		case <-stop:
			return nil
		case <-time.After(200 * time.Microsecond):
		}
	}
}
