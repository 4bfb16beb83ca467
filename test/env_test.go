package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

var dbSeq atomic.Int64

// env is one test's database with the outbox set up, and a config file that
// streams it to a file sink.
type env struct {
	t       *testing.T
	db      string
	pool    *pgxpool.Pool
	dir     string
	cfgPath string
	outPath string
}

// newEnv creates a fresh database, writes a config (extra YAML is appended
// under the top level) and runs `outbox-cdc setup`.
func newEnv(t *testing.T, extra string) *env {
	t.Helper()
	return newEnvOn(t, needPostgres(t), extra)
}

// newEnvOn is newEnv on a server of the test's own.
func newEnvOn(t *testing.T, p *harness.Postgres, extra string) *env {
	t.Helper()
	db := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	if err := p.CreateDatabase(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	return setupEnvOn(t, p, db, extra)
}

// setupEnv is newEnv for a database db that already exists. The env's own
// pool speaks UTF-8 whatever the database's encoding.
func setupEnv(t *testing.T, db, extra string) *env {
	t.Helper()
	return setupEnvOn(t, needPostgres(t), db, extra)
}

// setupEnvOn is setupEnv on a server of the test's own.
func setupEnvOn(t *testing.T, p *harness.Postgres, db, extra string) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, db: db, dir: t.TempDir()}
	pool, err := pgxpool.New(ctx, p.URL(e.db)+"&client_encoding=UTF8")
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
log: {level: debug}
%s`, p.URL(e.db), e.outPath, extra)
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := e.cli(ctx, "setup")
	if err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		pool.Close()
		// Drop the slot so it does not pin WAL for the rest of the run.
		// The server may still count a walsender whose client just exited
		// as active for a moment: wait for it (slot names are cluster-wide,
		// and the next test's setup would find this one).
		c, err := p.Connect(context.Background(), e.db)
		if err == nil {
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

// cli runs the binary with a command and the env's config; it returns the
// combined output.
func (e *env) cli(ctx context.Context, args ...string) (string, error) {
	return e.cliEnv(ctx, nil, args...)
}

// cliEnv is cli with extra environment.
func (e *env) cliEnv(ctx context.Context, env []string, args ...string) (string, error) {
	args = append(args, "--config", e.cfgPath)
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// proc is a running `outbox-cdc run`.
type proc struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// start runs `outbox-cdc run` in the background with extra environment.
func (e *env) start(extraEnv ...string) *proc {
	e.t.Helper()
	cmd := exec.Command(binary, "run", "--config", e.cfgPath)
	cmd.Env = append(os.Environ(), extraEnv...)
	logPath := filepath.Join(e.dir, fmt.Sprintf("run-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		p.kill()
		if e.t.Failed() {
			b, _ := os.ReadFile(logPath)
			e.t.Logf("outbox-cdc log %s:\n%s", logPath, tail(string(b), 60))
		}
	})
	p.logPath = logPath
	return p
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("outbox-cdc did not stop within 60s of SIGTERM")
	}
	if p.err != nil {
		t.Fatalf("outbox-cdc exited with %v", p.err)
	}
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// delivered is one line of the file sink.
type delivered struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Source       string          `json:"source"`
	Subject      string          `json:"subject"`
	Time         string          `json:"time"`
	PartitionKey string          `json:"partitionkey"`
	LSN          string          `json:"pglsn"`
	Data         json.RawMessage `json:"data"`
	raw          []byte
}

// readEvents reads the file sink's output. A torn last line (the process was
// killed during a write) is skipped: it was never acknowledged.
func (e *env) readEvents() []delivered {
	e.t.Helper()
	f, err := os.Open(e.outPath)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	var out []delivered
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var d delivered
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			continue
		}
		d.raw = bytes.Clone(sc.Bytes())
		out = append(out, d)
	}
	return out
}

// countLines counts lines without decoding them.
func (e *env) countLines() int {
	f, err := os.Open(e.outPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	buf := make([]byte, 1<<20)
	for {
		k, err := f.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err != nil {
			return n
		}
	}
}

// slot returns the slot's confirmed_flush_lsn and whether it is active.
func (e *env) slot() (uint64, bool) {
	e.t.Helper()
	var lsn string
	var active bool
	err := e.pool.QueryRow(context.Background(),
		"SELECT confirmed_flush_lsn::text, active FROM pg_replication_slots WHERE slot_name = 'outbox_cdc'").Scan(&lsn, &active)
	if err != nil {
		e.t.Fatal(err)
	}
	return parseLSN(e.t, lsn), active
}

func (e *env) currentLSN() uint64 {
	e.t.Helper()
	var lsn string
	if err := e.pool.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		e.t.Fatal(err)
	}
	return parseLSN(e.t, lsn)
}

func parseLSN(t *testing.T, s string) uint64 {
	t.Helper()
	l, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatalf("parse LSN %q: %v", s, err)
	}
	return uint64(l)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.pool.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
