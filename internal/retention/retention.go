// Package retention prunes outbox rows that every routed sink has
// acknowledged. The WAL already carried them, so they serve only as a local
// record; pruning keeps the table small without ever touching a row whose
// event is still in flight.
//
// A row is pruned when its transaction committed before both the retention
// age and the commit time of the newest acknowledged transaction (less a
// second of margin). That needs the commit time of the row's transaction:
// PostgreSQL keeps it only with track_commit_timestamp = on.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults.
const (
	DefaultInterval = time.Minute
	DefaultBatch    = 1000
	margin          = time.Second
)

// Config configures pruning. The zero Age turns it off.
type Config struct {
	// Age: rows whose transaction committed longer ago (and that every sink
	// acknowledged) are deleted. Default 0: never.
	Age time.Duration
	// Interval between pruning rounds. Default 1m.
	Interval time.Duration
	// Batch is the most rows one DELETE removes. Default 1000.
	Batch int
}

// Acked returns the commit time of the newest transaction every sink
// acknowledged, and false when there is none yet.
type Acked func() (time.Time, bool)

// Check verifies the server keeps commit timestamps.
func Check(ctx context.Context, conn *pgx.Conn) error {
	var v string
	if err := conn.QueryRow(ctx, "SHOW track_commit_timestamp").Scan(&v); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if v != "on" {
		return errors.New("postgres: outbox.retention needs track_commit_timestamp = on (set it in postgresql.conf and restart PostgreSQL) so that only acknowledged rows are pruned")
	}
	return nil
}

// Run prunes tables every interval until ctx is done. It blocks.
func Run(ctx context.Context, pool *pgxpool.Pool, tables []string, cfg Config, acked Acked, logger *slog.Logger) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		at, ok := acked()
		if !ok {
			continue
		}
		cutoff := time.Now().Add(-cfg.Age)
		if a := at.Add(-margin); a.Before(cutoff) {
			cutoff = a
		}
		for _, table := range tables {
			n, err := Prune(ctx, pool, table, cutoff, cfg.Batch)
			if err != nil {
				if ctx.Err() == nil {
					logger.Warn("outbox retention failed", "table", table, "err", err)
				}
				continue
			}
			if n > 0 {
				logger.Debug("outbox rows pruned", "table", table, "rows", n, "committed_before", cutoff)
			}
		}
	}
}

// Prune deletes, in batches of batch rows, the rows of table whose
// transaction committed before cutoff, and returns how many it deleted.
func Prune(ctx context.Context, pool *pgxpool.Pool, table string, cutoff time.Time, batch int) (int64, error) {
	schema, name, _ := strings.Cut(table, ".")
	q := pgx.Identifier{schema, name}.Sanitize()
	sql := `DELETE FROM ` + q + ` WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM ` + q + ` WHERE coalesce(pg_xact_commit_timestamp(xmin), '-infinity') < $1 LIMIT $2))`
	var total int64
	for {
		tag, err := pool.Exec(ctx, sql, cutoff, batch)
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(batch) {
			return total, nil
		}
	}
}
