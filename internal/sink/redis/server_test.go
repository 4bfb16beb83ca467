package redis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

// testServer is a redis-server started by a test on 127.0.0.1 and a free
// port, with its files in a temporary directory, killed at cleanup.
type testServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// redisServerBin finds redis-server ($OUTBOX_CDC_TEST_REDIS_SERVER, as
// scripts/install-test-deps.sh exports it, else PATH), or skips the test when
// it is missing and CI is unset (with CI set, a missing server fails the
// test).
func redisServerBin(t testing.TB) string {
	t.Helper()
	name := "redis-server"
	if env := os.Getenv(harness.EnvRedisServer); env != "" {
		name = env
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("redis-server not installed (apt-get install redis-server)")
		}
		t.Fatalf("redis-server not installed: %v", err)
	}
	return bin
}

// freePort returns a free TCP port on 127.0.0.1 that no other test process
// picks (see harness.FreePort).
func freePort(t testing.TB) int {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// startServer starts redis-server with extra config arguments
// ("--requirepass", "x", ...).
func startServer(t testing.TB, extra ...string) *testServer {
	t.Helper()
	return startServerPort(t, freePort(t), append([]string{"--port", "PORT"}, extra...)...)
}

// startServerPort starts redis-server for port with the given arguments;
// "PORT" in them stands for port. The readiness check only dials TCP, so it
// works for a TLS port too.
func startServerPort(t testing.TB, port int, args ...string) *testServer {
	t.Helper()
	args = slices.Clone(args)
	for i, a := range args {
		if a == "PORT" {
			args[i] = strconv.Itoa(port)
		}
	}
	s := &testServer{t: t, bin: redisServerBin(t), dir: t.TempDir(), port: port, args: args}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *testServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *testServer) start() {
	s.t.Helper()
	args := append([]string{
		"--bind", "127.0.0.1", "--save", "", "--dir", s.dir,
		"--daemonize", "no", "--appendfilename", "appendonly.aof", "--logfile", filepath.Join(s.dir, "redis.log"),
	}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	go cmd.Wait() //nolint:errcheck // reaps the process; kill waits for it through ProcessState
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redis-server on %s did not start: %v\n%s", s.addr(), err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop terminates the server like an orderly shutdown (SIGTERM; with
// appendonly the data survives) and waits until the port is closed.
func (s *testServer) stop() {
	s.t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cmd.Process.Signal(syscall.Signal(0)) != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", s.addr(), 100*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on %s did not stop", s.addr())
}

func (s *testServer) kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
	}
}

// client returns an independent go-redis client for reading back.
func (s *testServer) client(t testing.TB, opts ...func(*goredis.Options)) *goredis.Client {
	t.Helper()
	o := &goredis.Options{Addr: s.addr(), DisableIdentity: true}
	for _, f := range opts {
		f(o)
	}
	c := goredis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *testServer) do(t testing.TB, args ...any) any {
	t.Helper()
	v, err := s.client(t).Do(context.Background(), args...).Result()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

func (s *testServer) String() string { return fmt.Sprintf("redis-server %s", s.addr()) }
