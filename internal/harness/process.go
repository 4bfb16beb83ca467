package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procSpec describes a child process.
type procSpec struct {
	path    string
	args    []string
	dir     string
	env     []string // nil: inherit
	logPath string
	cred    *syscall.Credential // nil: run as the current user
	binds   string              // a server's listen addresses, for errors
}

// process is a running (or exited) child in its own process group.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the child has exited and was reaped
	waitErr error         // valid after done is closed
}

// Children are forked from one goroutine locked to its OS thread for the
// life of the process: PR_SET_PDEATHSIG fires when the *thread* that forked
// the child exits, and an ordinary goroutine may run on a thread that the Go
// runtime ends.
var (
	spawnOnce sync.Once
	spawnCh   chan func()
)

func onSpawnThread(f func()) {
	spawnOnce.Do(func() {
		spawnCh = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives on
			for f := range spawnCh {
				f()
			}
		}()
	})
	done := make(chan struct{})
	spawnCh <- func() { defer close(done); f() }
	<-done
}

func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,            // own group: Kill takes all its children
		Pdeathsig:  syscall.SIGKILL, // no orphans when the test binary dies
		Credential: cred,
	}
}

// openLog opens path for appending and writes a header line for cmd.
func openLog(path string, argv []string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "\n=== harness %s: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	return f, nil
}

// startProcess starts the child described by s. It returns once the child
// has been forked; it does not wait for it to become ready.
func startProcess(s procSpec) (*process, error) {
	logf, err := openLog(s.logPath, append([]string{s.path}, s.args...))
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(s.path, s.args...)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr(s.cred)
	onSpawnThread(func() { err = cmd.Start() })
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(s.path), err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// runLogged runs a short-lived command to completion, its output appended
// to s.logPath. The error includes the tail of the log.
func runLogged(ctx context.Context, s procSpec) error {
	logf, err := openLog(s.logPath, append([]string{s.path}, s.args...))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, s.path, s.args...)
	cmd.Dir = s.dir
	cmd.Env = s.env
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr(s.cred)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	onSpawnThread(func() { err = cmd.Start() })
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w\n--- %s (tail) ---\n%s", filepath.Base(s.path), strings.Join(s.args, " "),
			err, s.logPath, tailFile(s.logPath, 30))
	}
	return nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the group leader and waits up to timeout for it to
// exit; then, or if it did not exit in time, it SIGKILLs the whole group.
func (p *process) stop(sig syscall.Signal, timeout time.Duration) error {
	if p.exited() {
		p.kill()
		return nil
	}
	_ = syscall.Kill(p.pid(), sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		p.kill() // stragglers
		return nil
	case <-t.C:
		p.kill()
		return fmt.Errorf("did not exit within %s after %v; killed", timeout, sig)
	}
}

// kill SIGKILLs the process group and waits until the leader is reaped and
// no other live member of the group is left (at most 10 s).
//
// Children that left the group are killed too: PostgreSQL's backends call
// setsid(), so a SIGKILL to the postmaster's group misses them, and a new
// postmaster refuses to start ("pre-existing shared memory block is still in
// use") while one of them lingers.
func (p *process) kill() {
	pgid := p.pid()
	kids := descendants(pgid)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	for _, k := range kids {
		_ = syscall.Kill(k, syscall.SIGKILL)
	}
	<-p.done
	deadline := time.Now().Add(10 * time.Second)
	for (groupAlive(pgid) || anyAlive(kids)) && time.Now().Before(deadline) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		for _, k := range kids {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procStat returns the fields after "(comm)" of /proc/PID/stat: state, ppid,
// pgrp, ...; nil when the process is gone.
func procStat(pid string) []string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return nil
	}
	// pid (comm) state ppid pgrp ...; comm may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// descendants returns the pids of every live process below pid.
func descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := procStat(e.Name())
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], c)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// anyAlive reports whether any of pids is a live (non-zombie) process.
func anyAlive(pids []int) bool {
	for _, p := range pids {
		if f := procStat(strconv.Itoa(p)); len(f) > 0 && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// groupAlive reports whether a non-zombie process in group pgid exists.
func groupAlive(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		f := procStat(e.Name())
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			return true
		}
	}
	return false
}

// exitError describes how p exited, for error messages.
func (p *process) exitError() error {
	<-p.done
	if p.waitErr == nil {
		return errors.New("exited with status 0")
	}
	return p.waitErr
}

// waitReady calls probe until it succeeds, the process exits, or ctx (limited
// to timeout) ends. Each probe gets a context of at most 5 s.
func waitReady(ctx context.Context, p *process, timeout time.Duration, probe func(context.Context) error) error {
	ctx, cancel := deadlineFrom(ctx, timeout)
	defer cancel()
	var last error
	for {
		// A probe ends when the process exits: a server that could not
		// bind its port exits at once, while a probe of whatever holds the
		// port may hang.
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		go func() {
			select {
			case <-p.done:
				pcancel()
			case <-pctx.Done():
			}
		}()
		err := probe(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		last = err
		if p.exited() {
			return fmt.Errorf("exited before it was ready: %v", p.exitError())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready: %w (last probe error: %v)", ctx.Err(), last)
		case <-p.done:
			return fmt.Errorf("exited before it was ready: %v", p.exitError())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// base holds what every server type shares: its temp dir, log file, child
// process and lifecycle state. Its methods are called with mu held.
type base struct {
	mu      sync.Mutex
	name    string // "postgres", "redis", ...
	dir     string // temp dir, deleted by Close
	logPath string
	proc    *process // nil when stopped
	closed  bool
	ports   []int // reserved by reserve, released by close
}

// newBase creates the server's temp dir (mode 0755, owned by cred's user
// when cred is set).
func newBase(name string, cred *syscall.Credential) (*base, error) {
	sweepOnce.Do(sweepStaleDirs)
	dir, err := os.MkdirTemp("", tempPrefix+name+"-")
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs // PostgreSQL reports its data directory absolute
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	return &base{name: name, dir: dir, logPath: filepath.Join(dir, name+".log")}, nil
}

const (
	tempPrefix = "outbox-cdc-"
	ownerFile  = "harness-owner.pid" // pid of the test process that made the dir
)

var sweepOnce sync.Once

// sweepStaleDirs removes the temp dirs of earlier test processes that died
// without calling Close (a panic or a `go test -timeout`); their servers
// died with them (parent-death signal). A dir is stale when the pid in its
// owner file is not alive; dirs without the file are left alone.
func sweepStaleDirs() {
	if getenv(EnvKeepTemp) != "" {
		return
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // owner alive
		}
		os.RemoveAll(d)
	}
}

// Pid returns the process id of the running server process (the
// postmaster, redis-server, nats-server, the Kafka JVM), or 0 when it is
// stopped. Benchmarks read its CPU time from /proc.
func (b *base) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil || b.proc.exited() {
		return 0
	}
	return b.proc.pid()
}

func (b *base) checkStartable() error {
	if b.closed {
		return fmt.Errorf("%s: closed", b.name)
	}
	if b.proc != nil && !b.proc.exited() {
		return fmt.Errorf("%s: already running (pid %d)", b.name, b.proc.pid())
	}
	return nil
}

// launch starts the server process and waits until probe, given the
// server's pid, succeeds. On failure the process is killed and the error
// carries the log tail; it wraps ErrPortTaken when the server's output since
// this launch says it could not bind its address.
func (b *base) launch(ctx context.Context, s procSpec, timeout time.Duration, probe func(ctx context.Context, pid int) error) error {
	s.logPath = b.logPath
	var logStart int64
	if fi, err := os.Stat(b.logPath); err == nil {
		logStart = fi.Size()
	}
	p, err := startProcess(s)
	if err != nil {
		return fmt.Errorf("%s: %w", b.name, err)
	}
	err = waitReady(ctx, p, timeout, func(ctx context.Context) error { return probe(ctx, p.pid()) })
	if err != nil {
		p.kill()
		if addrInUse(readFrom(b.logPath, logStart)) {
			err = fmt.Errorf("%s: %w (the server could not bind it): %v", s.binds, ErrPortTaken, err)
		}
		return b.errWithLog(err)
	}
	b.proc = p
	return nil
}

// readFrom returns the file at path from offset off on (at most 1 MiB), or
// "" when it cannot be read.
func readFrom(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(io.NewSectionReader(f, off, 1<<62), 1<<20))
	return string(b)
}

// reserve picks and reserves a port for the server (see FreePort); close
// releases it.
func (b *base) reserve(ctx context.Context) (int, error) {
	port, err := reservePort()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", b.name, err)
	}
	b.ports = append(b.ports, port)
	if hook, ok := ctx.Value(pickedHookKey{}).(func(int)); ok {
		hook(port)
	}
	return port, nil
}

// retryPort decides, after the attempt-th start of a server ended in err,
// whether its Start function picks new ports and starts again: when the
// server could not bind a port the function picked (picked), at most
// maxPortAttempts times. Otherwise it returns the error to give up with.
func retryPort(err error, attempt int, picked bool) (bool, error) {
	if !picked || !errors.Is(err, ErrPortTaken) {
		return false, err
	}
	if attempt < maxPortAttempts {
		return true, nil
	}
	return false, fmt.Errorf("gave up after %d starts on ports that another program took: %w", attempt, err)
}

func (b *base) errWithLog(err error) error {
	return fmt.Errorf("%s: %w\n--- %s (tail) ---\n%s", b.name, err, b.logPath, tailFile(b.logPath, 40))
}

// stop stops the server gracefully with sig; see process.stop.
func (b *base) stop(sig syscall.Signal, timeout time.Duration) error {
	if b.proc == nil {
		return nil
	}
	p := b.proc
	b.proc = nil
	if p.exited() {
		p.kill() // stragglers
		return b.errWithLog(fmt.Errorf("had exited on its own before Stop: %v", p.exitError()))
	}
	if err := p.stop(sig, timeout); err != nil {
		return b.errWithLog(err)
	}
	return nil
}

func (b *base) kill() {
	if b.proc != nil {
		b.proc.kill()
		b.proc = nil
	}
}

// close kills the server and removes its temp dir. Idempotent.
func (b *base) close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.kill()
	for _, p := range b.ports {
		releasePort(p)
	}
	if getenv(EnvKeepTemp) != "" {
		fmt.Fprintf(os.Stderr, "harness: %s=%s: keeping %s\n", EnvKeepTemp, getenv(EnvKeepTemp), b.dir)
		return nil
	}
	return os.RemoveAll(b.dir)
}

func (b *base) running() bool { return b.proc != nil && !b.proc.exited() }

// osUserCred returns the credential of the named OS user.
func osUserCred(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// Kill sends SIGKILL to the server's whole process group and blocks until
// it is gone. The data directory is kept, so Start brings the server back
// (after crash recovery) on the same port. It is a no-op when the server is
// not running.
func (b *base) Kill() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.kill()
	return nil
}

// Close kills the server (SIGKILL: its data is discarded anyway, so there is
// nothing to shut down gracefully) and deletes its temporary directory with
// its data and log, unless $OUTBOX_CDC_TEST_KEEP_TEMP is set (for debugging).
// It blocks until both are done and may be called more than once. The
// server cannot be started again.
func (b *base) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.close()
}

// Running reports whether the server process is running.
func (b *base) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running()
}

// Dir returns the server's temporary directory (data and log live in it).
func (b *base) Dir() string { return b.dir }

// LogPath returns the path of the server's log file. Every Start appends to
// it after a "=== harness" header line.
func (b *base) LogPath() string { return b.logPath }

// LogTail returns the last n lines of the server's log (at most 16 KiB).
func (b *base) LogTail(n int) string { return tailFile(b.logPath, n) }
