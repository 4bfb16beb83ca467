package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// NATSOptions configures StartNATS. The zero value is a JetStream-enabled
// server without authentication.
type NATSOptions struct {
	// Port to listen on (127.0.0.1 only). Default: a free port (see
	// FreePort), replaced by another when it is taken at start.
	Port int
	// MaxPayload is the largest message the server accepts, in bytes
	// (max_payload). Default: the server's (1 MiB).
	MaxPayload int
	// User and Password require this user/password from clients.
	User, Password string
	// Token requires this authorization token from clients. Do not combine
	// with User.
	Token string
	// ExtraConf adds lines to the server's configuration file (nats-server
	// syntax), e.g. "max_connections: 100".
	ExtraConf []string
	// StartTimeout bounds each Start. Default 30 s.
	StartTimeout time.Duration
}

// NATS is a nats-server with JetStream started by StartNATS. The JetStream
// store directory survives Stop/Start and Kill/Start. Methods are safe for
// concurrent use.
type NATS struct {
	*base
	opts     NATSOptions
	bin      string
	port     int
	storeDir string
	confPath string
	name     string // server_name, unique to this server
}

// StartNATS starts nats-server with JetStream (-js) storing in a temporary
// directory. The binary is $OUTBOX_CDC_TEST_NATS_SERVER, else
// $OUTBOX_CDC_TEST_CACHE/bin/nats-server, else it is built (once, which can take
// a minute or two) with `go build` from the version in the repository's
// go.mod into that cache path. StartNATS blocks until the server accepts
// connections with JetStream enabled (at most opts.StartTimeout per start).
// When the port it picked is taken by the time the server binds it, it
// starts again on a new one (see ErrPortTaken). Close it when done.
func StartNATS(ctx context.Context, opts NATSOptions) (*NATS, error) {
	bin, err := natsServerBin(ctx)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.Token != "" && opts.User != "" {
		return nil, errors.New("nats: Token and User are mutually exclusive")
	}
	b, err := newBase("nats", nil)
	if err != nil {
		return nil, err
	}
	n := &NATS{base: b, opts: opts, bin: bin, port: opts.Port,
		storeDir: filepath.Join(b.dir, "jetstream"), confPath: filepath.Join(b.dir, "nats.conf"),
		name: "outbox-cdc-test-" + strings.TrimPrefix(filepath.Base(b.dir), tempPrefix+"nats-")}
	var conf []string
	if opts.MaxPayload > 0 {
		conf = append(conf, fmt.Sprintf("max_payload: %d", opts.MaxPayload))
		if opts.MaxPayload > 64<<20 { // max_pending must be >= max_payload
			conf = append(conf, fmt.Sprintf("max_pending: %d", opts.MaxPayload))
		}
	}
	conf = append(conf, opts.ExtraConf...)
	if err := os.WriteFile(n.confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		b.close()
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		err = nil
		if n.port == 0 {
			n.port, err = b.reserve(ctx)
		}
		if err == nil {
			err = n.Start(ctx)
		}
		if err == nil {
			return n, nil
		}
		if retry, err := retryPort(err, attempt, opts.Port == 0); !retry {
			b.close()
			return nil, err
		}
		n.port = 0 // another program took it: pick a new one
	}
}

var (
	natsBuildMu  sync.Mutex
	natsBuiltBin string
)

// natsServerBin finds or builds the nats-server binary; see StartNATS.
func natsServerBin(ctx context.Context) (string, error) {
	if p := getenv(EnvNATSServer); p != "" {
		return lookBin(EnvNATSServer, "nats-server")
	}
	cached := filepath.Join(CacheDir(), "bin", "nats-server")
	if isExecutable(cached) {
		return cached, nil
	}
	natsBuildMu.Lock()
	defer natsBuildMu.Unlock()
	if natsBuiltBin != "" {
		return natsBuiltBin, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no nats-server at %s and no go to build it: %w", cached, ErrNotInstalled)
	}
	root, err := repoRoot()
	if err != nil {
		return "", fmt.Errorf("no nats-server at %s and cannot build it: %v: %w", cached, err, ErrNotInstalled)
	}
	// Build into a temp file next to the cache path and rename it there:
	// the rename is atomic, so concurrent test processes cannot see a
	// half-written binary. Fall back to a temp dir if the cache is not
	// writable.
	dir := filepath.Dir(cached)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if dir, err = os.MkdirTemp("", "outbox-cdc-nats-bin-"); err != nil {
			return "", err
		}
		cached = filepath.Join(dir, "nats-server")
	}
	tmp, err := os.CreateTemp(dir, ".nats-server-build-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	ctx, cancel := deadlineFrom(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", tmp.Name(), "github.com/nats-io/nats-server/v2")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build nats-server in %s: %v\n%s", root, err, out)
	}
	if err := os.Rename(tmp.Name(), cached); err != nil {
		return "", err
	}
	natsBuiltBin = cached
	return cached, nil
}

// Start starts the stopped or killed server again on the same port and
// JetStream store directory. It blocks until a client connection gets an
// INFO with JetStream enabled (at most NATSOptions.StartTimeout, default
// 30 s, or ctx's deadline). The error wraps ErrPortTaken when another
// program took the port meanwhile.
func (n *NATS) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.checkStartable(); err != nil {
		return err
	}
	args := []string{"-c", n.confPath, "-js", "-sd", n.storeDir, "-a", "127.0.0.1", "-p", itoa(n.port),
		"-n", n.name}
	if n.opts.User != "" {
		args = append(args, "--user", n.opts.User, "--pass", n.opts.Password)
	}
	if n.opts.Token != "" {
		args = append(args, "--auth", n.opts.Token)
	}
	s := procSpec{path: n.bin, args: args, dir: n.dir, binds: n.Addr()}
	return n.launch(ctx, s, n.opts.StartTimeout, func(ctx context.Context, _ int) error { return n.probe(ctx) })
}

// probe reads the server's INFO line and checks that it is this server (its
// name, not that of a server that took the port while this one failed to
// bind it) and that JetStream is on.
func (n *NATS) probe(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", n.Addr())
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	js, ok := strings.CutPrefix(line, "INFO ")
	if !ok {
		return fmt.Errorf("nats: unexpected greeting %q", line)
	}
	var info struct {
		JetStream  bool   `json:"jetstream"`
		ServerName string `json:"server_name"`
	}
	if err := json.Unmarshal([]byte(js), &info); err != nil {
		return fmt.Errorf("nats: INFO: %v", err)
	}
	if info.ServerName != n.name {
		return fmt.Errorf("port %d is answered by another server (%q)", n.port, info.ServerName)
	}
	if !info.JetStream {
		return errors.New("nats: JetStream not enabled yet")
	}
	return nil
}

// Stop shuts the server down (SIGTERM) and blocks until it has exited;
// after 30 s it is killed and Stop returns an error. No-op after Stop or
// Kill; an error if the process had died on its own.
func (n *NATS) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stop(syscall.SIGTERM, 30*time.Second)
}

// Restart is Stop followed by Start.
func (n *NATS) Restart(ctx context.Context) error {
	if err := n.Stop(); err != nil {
		return err
	}
	return n.Start(ctx)
}

// Addr returns "127.0.0.1:PORT".
func (n *NATS) Addr() string { return "127.0.0.1:" + itoa(n.port) }

// Port returns the TCP port on 127.0.0.1.
func (n *NATS) Port() int { return n.port }

// URL returns nats://127.0.0.1:PORT, without credentials (pass
// NATSOptions.User/Password or Token to the client separately, or use
// URLWithAuth).
func (n *NATS) URL() string { return "nats://" + n.Addr() }

// URLWithAuth returns URL with the configured user:password or token as
// URL user info.
func (n *NATS) URLWithAuth() string {
	u := url.URL{Scheme: "nats", Host: n.Addr()}
	switch {
	case n.opts.User != "":
		u.User = url.UserPassword(n.opts.User, n.opts.Password)
	case n.opts.Token != "":
		u.User = url.User(n.opts.Token)
	}
	return u.String()
}

// StoreDir returns the JetStream store directory.
func (n *NATS) StoreDir() string { return n.storeDir }
