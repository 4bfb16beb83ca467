package pgconn

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	pgxconn "github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// ApplicationName is the application_name of outbox-cdc's connections, by
// which it recognises another outbox-cdc holding its slot (see Role for the
// suffixed names of one-off commands).
const ApplicationName = "outbox-cdc"

// DefaultConnectTimeout is Config.ConnectTimeout's default.
const DefaultConnectTimeout = 10 * time.Second

// Config says where the database is and how long connecting may take. The
// zero ConnectTimeout means DefaultConnectTimeout.
type Config struct {
	// URL is a libpq connection string, URL or key=value form. TLS is what
	// it says (sslmode, sslrootcert, ...). Its password never appears in an
	// error of this package.
	URL string
	// ConnectTimeout bounds each connection attempt, including TLS and
	// authentication. Default 10s.
	ConnectTimeout time.Duration
}

// Timeout returns ConnectTimeout, or its default. It is also the bound of
// one statement on a helper connection (heartbeat, slot poll, catalog
// check): a statement may take as long as a connection attempt.
func (c Config) Timeout() time.Duration {
	if c.ConnectTimeout <= 0 {
		return DefaultConnectTimeout
	}
	return c.ConnectTimeout
}

// Role says what a connection is for. The empty Role is the running
// instance (application_name "outbox-cdc", which a hot standby looks for);
// any other Role is a one-off command an operator may want to tell apart in
// pg_stat_activity ("outbox-cdc-backfill").
type Role string

// Roles.
const (
	RoleRun      Role = ""
	RoleBackfill Role = "backfill"
)

// ApplicationName is the application_name of a connection of role r.
func (r Role) ApplicationName() string {
	if r == RoleRun {
		return ApplicationName
	}
	return ApplicationName + "-" + string(r)
}

// OutputParams are the run-time parameters under which values read as text
// look the way pgoutput writes them (dates, times in UTC, bytea, floats):
// the replication connection uses them, and so does a SQL connection that
// must read rows as the stream would (backfill).
func OutputParams() map[string]string {
	return map[string]string{
		"DateStyle":          "ISO, YMD",
		"TimeZone":           "UTC",
		"bytea_output":       "hex",
		"extra_float_digits": "3",
	}
}

// Options are what one connection adds to a Config.
type Options struct {
	// Role is put into application_name. Default RoleRun.
	Role Role
	// Params are run-time parameters set at connection start, over the
	// URL's.
	Params map[string]string
}

// parse parses the URL with the connect timeout, application_name and
// params applied. Its error is redacted and names the key.
func (c Config) parse(o Options) (*pgx.ConnConfig, error) {
	pc, err := pgx.ParseConfig(c.URL)
	if err != nil {
		return nil, fmt.Errorf("config: postgres.url: %w", RedactError(err))
	}
	c.apply(pc, o)
	return pc, nil
}

func (c Config) apply(pc *pgx.ConnConfig, o Options) {
	pc.ConnectTimeout = c.Timeout()
	pc.RuntimeParams["application_name"] = o.Role.ApplicationName()
	for k, v := range o.Params {
		pc.RuntimeParams[k] = v
	}
}

// Connect opens a SQL connection, checks that outbox-cdc can read the
// database's server encoding and switches the connection to client_encoding
// UTF8 (see UseUTF8). A server it cannot reach is a *ConnectError; a server
// encoding it cannot read is an error naming it. The caller closes the
// connection.
func (c Config) Connect(ctx context.Context, o Options) (*pgx.Conn, error) {
	pc, err := c.parse(o)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, &ConnectError{Host: pc.Host, Port: pc.Port, Err: err}
	}
	if _, err := UseUTF8(ctx, conn); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// Pool returns a connection pool whose connections are opened as Connect's
// are, in client_encoding UTF8 from the start (the server encoding is
// checked by the Connect that comes first, at start). It connects lazily:
// errors come from the first use. The caller closes the pool.
func (c Config) Pool(ctx context.Context, o Options) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(c.URL)
	if err != nil {
		return nil, fmt.Errorf("config: postgres.url: %w", RedactError(err))
	}
	c.apply(pcfg.ConnConfig, o)
	pcfg.ConnConfig.RuntimeParams["client_encoding"] = "UTF8"
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", RedactError(err))
	}
	return pool, nil
}

// Replication opens a replication=database connection with OutputParams,
// params over them, and a 256 KiB read buffer: while the stream runs ahead
// of the reader the kernel holds many of the server's 8 KiB sends, and one
// read takes them. Its errors are the server's (for the caller to classify),
// redacted, or a *ConnectError.
func (c Config) Replication(ctx context.Context, params map[string]string) (*pgxconn.PgConn, error) {
	o := Options{Params: OutputParams()}
	for k, v := range params {
		o.Params[k] = v
	}
	o.Params["replication"] = "database"
	pc, err := c.parse(o)
	if err != nil {
		return nil, err
	}
	cfg := pc.Config
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(bufio.NewReaderSize(r, 256<<10), w)
	}
	conn, err := pgxconn.ConnectConfig(ctx, &cfg)
	if err != nil {
		return nil, RedactError(err)
	}
	return conn, nil
}

// UseUTF8 checks that outbox-cdc can read the database's server_encoding
// (decoder.SupportedEncodings) and switches conn to client_encoding UTF8,
// so that the names and text it sends and reads are UTF-8 whatever the
// database's encoding. It returns the server encoding. Connect calls it.
func UseUTF8(ctx context.Context, conn *pgx.Conn) (string, error) {
	enc := conn.PgConn().ParameterStatus("server_encoding")
	if enc == "" {
		if err := conn.QueryRow(ctx, "SHOW server_encoding").Scan(&enc); err != nil {
			return "", fmt.Errorf("postgres: %w", err)
		}
	}
	if err := decoder.CheckEncoding(enc); err != nil {
		return enc, fmt.Errorf("postgres: database %q: %w", conn.Config().Database, err)
	}
	if conn.PgConn().ParameterStatus("client_encoding") != "UTF8" {
		if _, err := conn.Exec(ctx, "SET client_encoding TO 'UTF8'"); err != nil {
			return enc, fmt.Errorf("postgres: set client_encoding UTF8: %w", err)
		}
	}
	return enc, nil
}

// ConnectError is a server outbox-cdc could not connect to. Its text names
// the host and port, says what to check and never shows a password; Unwrap
// returns pgx's error (errors.As finds a *pgconn.PgError the server sent).
type ConnectError struct {
	Host string
	Port uint16
	Err  error
}

func (e *ConnectError) Error() string {
	return "postgres: cannot connect to " + e.Host + ":" + strconv.Itoa(int(e.Port)) +
		" (is PostgreSQL running, and is postgres.url right?): " + RedactURL(e.Err.Error())
}

func (e *ConnectError) Unwrap() error { return e.Err }
