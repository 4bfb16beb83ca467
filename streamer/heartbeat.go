package streamer

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
)

// heartbeat writes a transactional logical decoding message with the
// heartbeat prefix every interval while this instance streams, so the slot's
// confirmed position moves (and lag stays measurable) on an idle outbox. The
// decoder never publishes it. It returns when ctx is done.
func heartbeat(ctx context.Context, cfg *config.Config, prefix string, stream *replication.Stream, logger *slog.Logger) {
	t := time.NewTicker(cfg.Heartbeat.Interval)
	defer t.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if stream.State() != replication.StateStreaming {
			continue // a standby must not write
		}
		err := func() error {
			if conn == nil || conn.IsClosed() {
				c, err := Connect(ctx, cfg)
				if err != nil {
					return err
				}
				conn = c
			}
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := conn.Exec(qctx, "SELECT pg_logical_emit_message(true, $1, $2)", prefix,
				`{"at":"`+time.Now().UTC().Format(time.RFC3339Nano)+`","unix_ms":`+strconv.FormatInt(time.Now().UnixMilli(), 10)+`}`)
			if err != nil {
				conn.Close(context.Background())
				conn = nil
			}
			return err
		}()
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			failing = true
			logger.Warn("heartbeat failed", "err", replication.RedactURL(err.Error()))
		case err == nil && failing:
			failing = false
			logger.Info("heartbeat recovered")
		}
	}
}
