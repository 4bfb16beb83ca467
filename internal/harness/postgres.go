package harness

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresOptions configures StartPostgres. The zero value is a test
// server with wal_level=logical and fsync off.
type PostgresOptions struct {
	// Port to listen on (127.0.0.1 only). Default: a free port (see
	// FreePort), replaced by another when it is taken at start.
	Port int
	// BinDir holds initdb and postgres. Default: the bin dir of Version
	// (see PGBinDirFor), else $OUTBOX_CDC_TEST_PG_BIN, else the newest
	// /usr/lib/postgresql/*/bin.
	BinDir string
	// Version is the PostgreSQL major to start (14 to 18) when BinDir is
	// empty. Default: $OUTBOX_CDC_TEST_PG_VERSION (see PGVersion), else
	// whatever BinDir's default holds.
	Version int
	// WALLevel is the wal_level setting. Default "logical"; set "replica"
	// to test how the streamer reports a server it cannot decode from.
	WALLevel string
	// Fsync turns fsync (and full_page_writes) on. Default off, which is
	// faster and fine for tests that do not measure durability; benchmarks
	// should set it.
	Fsync bool
	// SynchronousCommit is the synchronous_commit setting. Default "on".
	SynchronousCommit string
	// ExtraConf adds or overrides postgresql.conf settings. Values are
	// written single-quoted.
	ExtraConf map[string]string
	// OSUser runs initdb and postgres as this OS user when the tests run as
	// root (postgres refuses to run as root). Default "postgres".
	OSUser string
	// StartTimeout bounds each Start. Default 60 s.
	StartTimeout time.Duration
}

// Postgres is a PostgreSQL server started by StartPostgres. Its superuser
// is "postgres" with trust authentication on 127.0.0.1 (including
// replication connections). Methods are safe for concurrent use.
type Postgres struct {
	*base
	opts    PostgresOptions
	binDir  string
	dataDir string
	port    int
	cred    *syscall.Credential
	major   int // PostgreSQL major of binDir
}

// StartPostgres creates a new cluster (initdb) in a temporary directory,
// configures it and starts it. It blocks until the server accepts
// connections (at most opts.StartTimeout per start). When the port it
// picked is taken by the time the server binds it, it starts again on a new
// one (see ErrPortTaken). Close it when done.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*Postgres, error) {
	if opts.BinDir == "" {
		if opts.Version == 0 {
			v, err := PGVersion()
			if err != nil {
				return nil, fmt.Errorf("postgres: %w", err)
			}
			opts.Version = v
		}
		if opts.Version != 0 {
			d, err := PGBinDirFor(opts.Version)
			if err != nil {
				return nil, err
			}
			opts.BinDir = d
		}
	}
	binDir, err := pgBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	major, err := binMajor(binDir)
	if err != nil {
		return nil, err
	}
	if opts.WALLevel == "" {
		opts.WALLevel = "logical"
	}
	if opts.SynchronousCommit == "" {
		opts.SynchronousCommit = "on"
	}
	if opts.OSUser == "" {
		opts.OSUser = "postgres"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred, err = osUserCred(opts.OSUser)
		if err != nil {
			return nil, fmt.Errorf("postgres: running as root needs the OS user %q (created by the postgresql package): %v: %w",
				opts.OSUser, err, ErrNotInstalled)
		}
	}
	b, err := newBase("postgres", cred)
	if err != nil {
		return nil, err
	}
	pg := &Postgres{base: b, opts: opts, binDir: binDir, dataDir: filepath.Join(b.dir, "data"), port: opts.Port, cred: cred, major: major}
	if pg.port == 0 {
		if pg.port, err = b.reserve(ctx); err != nil {
			b.close()
			return nil, err
		}
	}
	if err := pg.initdb(ctx); err != nil {
		b.close()
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		err := pg.Start(ctx)
		if err == nil {
			return pg, nil
		}
		retry, err := retryPort(err, attempt, opts.Port == 0)
		if !retry {
			b.close()
			return nil, err
		}
		// Another program took the port: move to a new one.
		if pg.port, err = b.reserve(ctx); err == nil {
			err = pg.appendConf(map[string]string{"port": itoa(pg.port)})
		}
		if err != nil {
			b.close()
			return nil, err
		}
	}
}

// pgBinDir returns dir, else $OUTBOX_CDC_TEST_PG_BIN, else the newest
// /usr/lib/postgresql/*/bin; it must contain initdb and postgres.
func pgBinDir(dir string) (string, error) {
	if dir == "" {
		dir = getenv(EnvPGBin)
	}
	if dir == "" {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		slices.SortFunc(matches, func(a, b string) int {
			return pgMajor(a) - pgMajor(b)
		})
		if len(matches) > 0 {
			dir = matches[len(matches)-1]
		}
	}
	if dir == "" {
		return "", fmt.Errorf("postgres: no /usr/lib/postgresql/*/bin (set %s): %w", EnvPGBin, ErrNotInstalled)
	}
	for _, exe := range []string{"initdb", "postgres"} {
		if !isExecutable(filepath.Join(dir, exe)) {
			return "", fmt.Errorf("postgres: %s not found in %s: %w", exe, dir, ErrNotInstalled)
		}
	}
	return dir, nil
}

// pgMajor returns N of /usr/lib/postgresql/N/bin (0 if not a number).
func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func (pg *Postgres) spec(exe string, args ...string) procSpec {
	return procSpec{
		path:    filepath.Join(pg.binDir, exe),
		args:    args,
		dir:     pg.dir,
		env:     envWith("LC_ALL=C", "LANG=C", "HOME="+pg.dir, "PGTZ=UTC"),
		logPath: pg.logPath,
		cred:    pg.cred,
	}
}

func (pg *Postgres) initdb(ctx context.Context) error {
	ctx, cancel := deadlineFrom(ctx, 2*time.Minute)
	defer cancel()
	err := runLogged(ctx, pg.spec("initdb", "-D", pg.dataDir, "-A", "trust", "-U", "postgres",
		"--no-sync", "-E", "UTF8", "--no-locale"))
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	conf := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    itoa(pg.port),
		"unix_socket_directories": pg.dir,
		"wal_level":               pg.opts.WALLevel,
		"max_replication_slots":   "32",
		"max_wal_senders":         "32",
		"wal_sender_timeout":      "60s",
		"shared_buffers":          "128MB",
		"max_connections":         "200",
		"fsync":                   onOff(pg.opts.Fsync),
		"full_page_writes":        onOff(pg.opts.Fsync),
		"synchronous_commit":      pg.opts.SynchronousCommit,
		"log_min_messages":        "warning",
		"timezone":                "UTC",
	}
	maps.Copy(conf, pg.opts.ExtraConf)
	return pg.appendConf(conf)
}

// appendConf appends settings to postgresql.conf, where they override the
// lines above them.
func (pg *Postgres) appendConf(conf map[string]string) error {
	var sb strings.Builder
	sb.WriteString("\n# --- outbox-cdc test harness ---\n")
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		fmt.Fprintf(&sb, "%s = %s\n", k, quoteLiteral(conf[k]))
	}
	f, err := os.OpenFile(filepath.Join(pg.dataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if _, err := f.WriteString(sb.String()); err != nil {
		f.Close()
		return fmt.Errorf("postgres: %w", err)
	}
	return f.Close()
}

// quoteLiteral quotes s as an SQL string literal (and a postgresql.conf
// value).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// Start starts the (stopped or killed) server again on the same port and
// data directory, like `pg_ctl -w start`: it blocks until the server
// accepts connections, including any crash recovery after Kill (at most
// PostgresOptions.StartTimeout, default 60 s, or ctx's deadline). The error
// wraps ErrPortTaken when another program took the port meanwhile.
//
// The postmaster runs in the foreground as a child of the test process
// rather than detached by pg_ctl, so it dies with a crashed test.
func (pg *Postgres) Start(ctx context.Context) error {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	if err := pg.checkStartable(); err != nil {
		return err
	}
	s := pg.spec("postgres", "-D", pg.dataDir)
	s.binds = pg.Addr()
	return pg.launch(ctx, s, pg.opts.StartTimeout, func(ctx context.Context, _ int) error {
		conn, err := pgx.Connect(ctx, pg.URL("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		// The server on the port must be this one, not one that took
		// the port while this one failed to bind it.
		var dir string
		if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dir); err != nil {
			return err
		}
		if dir != pg.dataDir {
			return fmt.Errorf("port %d is answered by another server (data directory %s)", pg.port, dir)
		}
		return nil
	})
}

// Stop shuts the server down like `pg_ctl -w stop -m fast` (SIGINT: roll
// back open transactions, close connections, write a shutdown checkpoint)
// and blocks until it has exited. If it has not exited after 60 s it is
// killed and Stop returns an error. No-op after Stop or Kill; an error if the
// process had died on its own.
func (pg *Postgres) Stop() error {
	pg.mu.Lock()
	defer pg.mu.Unlock()
	return pg.stop(syscall.SIGINT, 60*time.Second)
}

// Restart is Stop followed by Start.
func (pg *Postgres) Restart(ctx context.Context) error {
	if err := pg.Stop(); err != nil {
		return err
	}
	return pg.Start(ctx)
}

// Port returns the TCP port on 127.0.0.1.
func (pg *Postgres) Port() int { return pg.port }

// Addr returns "127.0.0.1:PORT".
func (pg *Postgres) Addr() string { return "127.0.0.1:" + itoa(pg.port) }

// Version returns the server's PostgreSQL major version (e.g. 17).
func (pg *Postgres) Version() int { return pg.major }

// BinDir returns the directory holding initdb, postgres, pg_ctl etc.
func (pg *Postgres) BinDir() string { return pg.binDir }

// DataDir returns the cluster's data directory (PGDATA).
func (pg *Postgres) DataDir() string { return pg.dataDir }

// SocketDir returns the directory of the server's Unix socket.
func (pg *Postgres) SocketDir() string { return pg.dir }

// URL returns the connection URL of database db as superuser "postgres":
// postgres://postgres@127.0.0.1:PORT/db?sslmode=disable.
func (pg *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.port, db)
}

// UserURL is URL for another role (created with CreateRole; no password is
// needed with trust authentication).
func (pg *Postgres) UserURL(role, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", role, pg.port, db)
}

// ReplicationURL is URL with replication=database, for a logical
// replication connection (pgconn / pglogrepl) to db.
func (pg *Postgres) ReplicationURL(db string) string {
	return pg.URL(db) + "&replication=database"
}

// Connect opens a pgx connection to db as "postgres". The caller closes it.
func (pg *Postgres) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, pg.URL(db))
}

// Exec runs sql (which may hold several statements when args is empty) in
// db as "postgres" on a new connection, and closes it.
func (pg *Postgres) Exec(ctx context.Context, db, sql string, args ...any) error {
	conn, err := pg.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// CreateDatabase creates database name (owned by "postgres").
func (pg *Postgres) CreateDatabase(ctx context.Context, name string) error {
	return pg.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// CreateRole creates a LOGIN role without password (authentication is
// trust), with the REPLICATION attribute when replication is true. It does
// not grant table privileges.
func (pg *Postgres) CreateRole(ctx context.Context, name string, replication bool) error {
	sql := "CREATE ROLE " + pgx.Identifier{name}.Sanitize() + " LOGIN"
	if replication {
		sql += " REPLICATION"
	}
	return pg.Exec(ctx, "postgres", sql)
}
