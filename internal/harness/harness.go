package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrNotInstalled is wrapped by the errors of the Start functions when a
// server's binary, bin dir, jar dir or runtime (java) cannot be found. Test it
// with errors.Is to decide between skipping and failing (see Require).
var ErrNotInstalled = errors.New("not installed (run scripts/install-test-deps.sh)")

// Environment variables read by the harness. See the package documentation.
// They start with EnvPrefix, which package config leaves alone: outbox-cdc
// processes started by tests inherit them without warning about them.
const (
	EnvPrefix         = "OUTBOX_CDC_TEST_"
	EnvCache          = EnvPrefix + "CACHE"
	EnvPGBin          = EnvPrefix + "PG_BIN"
	EnvRedisServer    = EnvPrefix + "REDIS_SERVER"
	EnvNATSServer     = EnvPrefix + "NATS_SERVER"
	EnvKafkaLibs      = EnvPrefix + "KAFKA_LIBS"
	EnvJava           = EnvPrefix + "JAVA"
	EnvRequireServers = EnvPrefix + "REQUIRE_SERVERS"
	EnvKeepTemp       = EnvPrefix + "KEEP_TEMP" // non-empty: Close keeps the temp dir
)

// lookupEnv returns the value of the harness variable name and the name it
// was read from: name, or, when name is not set at all, its name from before
// the OUTBOX_CDC_TEST_ prefix (OUTBOX_CDC_PG_BIN for OUTBOX_CDC_TEST_PG_BIN),
// which an older env.sh or a shell profile may still export.
func lookupEnv(name string) (value, from string) {
	if v, ok := os.LookupEnv(name); ok {
		return v, name
	}
	old := "OUTBOX_CDC_" + strings.TrimPrefix(name, EnvPrefix)
	if v, ok := os.LookupEnv(old); ok {
		return v, old
	}
	return "", name
}

// getenv is the value of lookupEnv.
func getenv(name string) string {
	v, _ := lookupEnv(name)
	return v
}

// Require reports whether a test must fail, rather than skip, when the
// server called name (e.g. "postgres", "redis", "nats", "kafka") is not
// installed.
//
// OUTBOX_CDC_TEST_REQUIRE_SERVERS decides when set: "1", "true", "yes" or "all"
// require every server; "0", "false" or "no" require none (even on CI); any
// other value is a comma-separated list of required server names. When it
// is unset or empty, every server is required when CI is non-empty and none
// otherwise.
func Require(name string) bool {
	v := strings.TrimSpace(getenv(EnvRequireServers))
	switch strings.ToLower(v) {
	case "":
		return os.Getenv("CI") != ""
	case "1", "true", "yes", "all":
		return true
	case "0", "false", "no":
		return false
	}
	for _, n := range strings.Split(v, ",") {
		if strings.EqualFold(strings.TrimSpace(n), name) {
			return true
		}
	}
	return false
}

// TB is the part of testing.TB that SkipIfNotInstalled uses.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// SkipIfNotInstalled handles the error of a Start function in a test: it
// does nothing when err is nil, skips the test when err wraps
// ErrNotInstalled and Require(name) is false, and fails the test (Fatalf)
// otherwise.
func SkipIfNotInstalled(t TB, name string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, ErrNotInstalled) && !Require(name) {
		t.Skipf("skipping: %s: %v (set %s=1 to make this a failure)", name, err, EnvRequireServers)
		return
	}
	t.Fatalf("start %s: %v", name, err)
}

// CacheDir returns the directory scripts/install-test-deps.sh installs into:
// $OUTBOX_CDC_TEST_CACHE, default $HOME/.cache/outbox-cdc. It does not
// create it.
func CacheDir() string {
	if d := getenv(EnvCache); d != "" {
		return d
	}
	home := os.Getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	if home == "" {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "outbox-cdc")
}

// repoRoot returns the nearest directory at or above the working directory
// that holds a go.mod file.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// lookBin returns the path of an executable: env's value when set (it must
// exist), else the first candidate that is an executable file, else name
// looked up in PATH. The error wraps ErrNotInstalled.
func lookBin(env, name string, candidates ...string) (string, error) {
	if p, from := lookupEnv(env); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("%s=%s: not an executable file: %w", from, p, ErrNotInstalled)
	}
	for _, c := range candidates {
		if isExecutable(c) {
			return c, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found (set %s): %w", name, env, ErrNotInstalled)
	}
	return p, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// javaBin locates java: $OUTBOX_CDC_TEST_JAVA, $JAVA_HOME/bin/java, java in PATH.
func javaBin() (string, error) {
	var cands []string
	if jh := os.Getenv("JAVA_HOME"); jh != "" {
		cands = append(cands, filepath.Join(jh, "bin", "java"))
	}
	return lookBin(EnvJava, "java", cands...)
}

// tailFile returns up to the last maxLines lines (and at most 16 KiB) of
// the file at path, or a note saying why it could not be read.
func tailFile(path string, maxLines int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const maxBytes = 16 << 10
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	off := fi.Size() - maxBytes
	if off < 0 {
		off = 0
	}
	buf := make([]byte, fi.Size()-off)
	n, _ := f.ReadAt(buf, off)
	lines := strings.Split(strings.TrimRight(string(buf[:n]), "\n"), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // first line is probably cut
	}
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}

// deadlineFrom returns ctx limited to timeout when ctx has no earlier
// deadline.
func deadlineFrom(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, timeout)
}

// envWith returns os.Environ() with the given KEY=VALUE entries replacing
// or adding to it.
func envWith(kv ...string) []string {
	env := os.Environ()
	out := env[:0:0]
	for _, e := range env {
		keep := true
		for _, o := range kv {
			if k, _, _ := strings.Cut(o, "="); strings.HasPrefix(e, k+"=") {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, e)
		}
	}
	return append(out, kv...)
}

func itoa(i int) string { return strconv.Itoa(i) }
