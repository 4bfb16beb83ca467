package replication

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5/pgconn"

	pgc "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

// classify maps a server error onto a FatalError when reconnecting cannot fix
// it, with a message that says what to do. Other errors are returned as they
// are and retried.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return pgc.RedactError(err)
	}
	switch {
	case pgErr.Code == "42501" || (pgErr.Code == "28000" && containsAny(pgErr.Message, "replication")):
		return &FatalError{fmt.Errorf("postgres: permission denied: %s (the role needs the REPLICATION attribute: ALTER ROLE <role> WITH REPLICATION; docs/security.md lists what each role needs)", pgErr.Message)}
	case pgErr.Code == "28P01" || pgErr.Code == "28000":
		return &FatalError{fmt.Errorf("postgres: authentication failed: %s (check postgres.url)", pgErr.Message)}
	case pgErr.Code == "3D000":
		return &FatalError{fmt.Errorf("postgres: %s (check postgres.url)", pgErr.Message)}
	case pgErr.Code == "55000" && containsAny(pgErr.Message, "wal_level"):
		return &FatalError{fmt.Errorf("postgres: %s: set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL", pgErr.Message)}
	case pgErr.Code == "42704":
		return &FatalError{fmt.Errorf("postgres: %s: run `outbox-cdc setup`", pgErr.Message)}
	}
	return err
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if regexp.MustCompile("(?i)" + regexp.QuoteMeta(sub)).MatchString(s) {
			return true
		}
	}
	return false
}

// StandbyError says that the server outbox-cdc connected to is a standby
// (in recovery). The stream reconnects, which finds the primary through a
// multi-host URL with target_session_attrs=read-write, or this server once
// it is promoted; decoding on a standby (PostgreSQL 16+) is not supported.
type StandbyError struct {
	Addr    string // the server's address
	Version int    // the server's major, 0 when unknown
}

func (e *StandbyError) Error() string {
	return fmt.Sprintf("postgres: %s is a standby (PostgreSQL %d, in recovery); outbox-cdc streams from the primary only and waits for it: "+
		"list every host in postgres.url with target_session_attrs=read-write (postgres://h1,h2/db?target_session_attrs=read-write) "+
		"so that outbox-cdc finds the primary after a promotion; see docs/postgres-versions.md", e.Addr, e.Version)
}
