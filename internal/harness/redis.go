package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RedisOptions configures StartRedis. The zero value is a server without
// persistence or authentication.
type RedisOptions struct {
	// Port to listen on (127.0.0.1 only). Default: a free port (see
	// FreePort), replaced by another when it is taken at start.
	Port int
	// AppendOnly turns on the append-only file (appendfsync everysec), so
	// data survives Stop/Start and Kill/Start. Default off: RDB snapshots
	// are off too (save ""), so a restarted server is empty.
	AppendOnly bool
	// Password sets requirepass (the "default" user's password).
	Password string
	// Users adds ACL users.
	Users []RedisUser
	// ExtraConf adds redis.conf lines, e.g. "maxmemory 64mb".
	ExtraConf []string
	// StartTimeout bounds each Start. Default 30 s.
	StartTimeout time.Duration
}

// RedisUser is an ACL user of RedisOptions.Users.
type RedisUser struct {
	Name     string
	Password string
	// Rules are the ACL rules after "on >password". Default "~* &* +@all".
	Rules string
}

// Redis is a redis-server started by StartRedis. Methods are safe for
// concurrent use.
type Redis struct {
	*base
	opts     RedisOptions
	bin      string
	port     int
	confPath string
}

// StartRedis starts redis-server ($OUTBOX_CDC_TEST_REDIS_SERVER, else
// redis-server in PATH) with its working directory in a temporary directory.
// It blocks until the server answers PING (at most opts.StartTimeout per
// start). When the port it picked is taken by the time the server binds
// it, it starts again on a new one (see ErrPortTaken). Close it when done.
func StartRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	bin, err := lookBin(EnvRedisServer, "redis-server", "/usr/bin/redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 30 * time.Second
	}
	b, err := newBase("redis", nil)
	if err != nil {
		return nil, err
	}
	r := &Redis{base: b, opts: opts, bin: bin, port: opts.Port, confPath: filepath.Join(b.dir, "redis.conf")}
	for attempt := 1; ; attempt++ {
		err = nil
		if r.port == 0 {
			r.port, err = b.reserve(ctx)
		}
		if err == nil {
			err = os.WriteFile(r.confPath, []byte(r.config()), 0o600)
		}
		if err == nil {
			err = r.Start(ctx)
		}
		if err == nil {
			return r, nil
		}
		if retry, err := retryPort(err, attempt, opts.Port == 0); !retry {
			b.close()
			return nil, err
		}
		r.port = 0 // another program took it: pick a new one
	}
}

func (r *Redis) config() string {
	yesNo := map[bool]string{true: "yes", false: "no"}
	lines := []string{
		"bind 127.0.0.1",
		"port " + itoa(r.port),
		"protected-mode yes",
		"daemonize no",
		"logfile \"\"",
		"loglevel notice",
		"dir " + redisQuote(r.dir),
		"save \"\"",
		"appendonly " + yesNo[r.opts.AppendOnly],
		"appendfsync everysec",
	}
	if r.opts.Password != "" {
		lines = append(lines, "requirepass "+redisQuote(r.opts.Password))
	}
	for _, u := range r.opts.Users {
		rules := u.Rules
		if rules == "" {
			rules = "~* &* +@all"
		}
		lines = append(lines, fmt.Sprintf("user %s on %s %s", u.Name, redisQuote(">"+u.Password), rules))
	}
	lines = append(lines, r.opts.ExtraConf...)
	return strings.Join(lines, "\n") + "\n"
}

// redisQuote double-quotes s for redis.conf.
func redisQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// Start starts the stopped or killed server again on the same port and
// directory (with AppendOnly, the data is loaded back). It blocks until the
// server answers PING (at most RedisOptions.StartTimeout, default 30 s, or
// ctx's deadline). The error wraps ErrPortTaken when another program took
// the port meanwhile.
func (r *Redis) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkStartable(); err != nil {
		return err
	}
	s := procSpec{path: r.bin, args: []string{r.confPath}, dir: r.dir, binds: r.Addr()}
	return r.launch(ctx, s, r.opts.StartTimeout, r.ping)
}

// Stop shuts the server down (SIGTERM; with AppendOnly the file is synced)
// and blocks until it has exited; after 30 s it is killed and Stop returns
// an error. No-op after Stop or Kill; an error if the
// process had died on its own.
func (r *Redis) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stop(syscall.SIGTERM, 30*time.Second)
}

// Restart is Stop followed by Start.
func (r *Redis) Restart(ctx context.Context) error {
	if err := r.Stop(); err != nil {
		return err
	}
	return r.Start(ctx)
}

// Addr returns "127.0.0.1:PORT".
func (r *Redis) Addr() string { return "127.0.0.1:" + itoa(r.port) }

// Port returns the TCP port on 127.0.0.1.
func (r *Redis) Port() int { return r.port }

// URL returns redis://[:password@]127.0.0.1:PORT/0, with the requirepass
// password if one is set.
func (r *Redis) URL() string {
	u := url.URL{Scheme: "redis", Host: r.Addr(), Path: "/0"}
	if r.opts.Password != "" {
		u.User = url.UserPassword("", r.opts.Password)
	}
	return u.String()
}

// Ping sends PING over a new raw RESP connection (after AUTH with
// RedisOptions.Password when set) and returns nil when the answer is PONG.
// It errors while the server is still loading its data.
func (r *Redis) Ping(ctx context.Context) error { return r.ping(ctx, 0) }

// ping is Ping; when pid is not 0 it also checks with INFO that the server
// answering is process pid, not one that took the port while this one failed
// to bind it.
func (r *Redis) ping(ctx context.Context, pid int) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", r.Addr())
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	br := bufio.NewReader(conn)
	cmd := func(args ...string) (string, error) {
		var sb strings.Builder
		fmt.Fprintf(&sb, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&sb, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := conn.Write([]byte(sb.String())); err != nil {
			return "", err
		}
		line, err := br.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if err != nil || !strings.HasPrefix(line, "$") {
			return line, err
		}
		n, err := strconv.Atoi(line[1:]) // a bulk string: return its body
		if err != nil || n < 0 {
			return line, err
		}
		body := make([]byte, n+2)
		_, err = io.ReadFull(br, body)
		return string(body[:n]), err
	}
	if r.opts.Password != "" {
		if reply, err := cmd("AUTH", r.opts.Password); err != nil || reply != "+OK" {
			return fmt.Errorf("redis AUTH: %q %v", reply, err)
		}
	}
	reply, err := cmd("PING")
	if err != nil {
		return err
	}
	if reply != "+PONG" {
		return fmt.Errorf("redis PING: %q", reply)
	}
	if pid == 0 {
		return nil
	}
	info, err := cmd("INFO", "server")
	if err != nil {
		return err
	}
	if !strings.Contains(info, "\nprocess_id:"+itoa(pid)+"\r") {
		return fmt.Errorf("port %d is answered by another redis-server (not pid %d)", r.port, pid)
	}
	return nil
}
