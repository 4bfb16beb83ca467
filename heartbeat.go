package outboxcdc

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

// heartbeat writes a transactional logical decoding message with the
// heartbeat prefix every interval while this instance streams, so that the
// slot's confirmed position moves (and lag stays measurable) on an idle
// outbox. The decoder never publishes it.
type heartbeat struct {
	pg        pgconn.Config
	interval  time.Duration
	prefix    string
	streaming func() bool // a standby must not write
	logger    *slog.Logger
}

// run beats until ctx is done, on a connection of its own that it closes
// before it returns. Each beat may take as long as a connection attempt.
func (h *heartbeat) run(ctx context.Context) {
	t := time.NewTicker(h.interval)
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
		if !h.streaming() {
			continue
		}
		err := func() error {
			bctx, cancel := context.WithTimeout(ctx, h.pg.Timeout())
			defer cancel()
			if conn == nil || conn.IsClosed() {
				c, err := h.pg.Connect(bctx, pgconn.Options{})
				if err != nil {
					return err
				}
				conn = c
			}
			now := time.Now()
			_, err := conn.Exec(bctx, "SELECT pg_logical_emit_message(true, $1, $2)", h.prefix,
				`{"at":"`+now.UTC().Format(time.RFC3339Nano)+`","unix_ms":`+strconv.FormatInt(now.UnixMilli(), 10)+`}`)
			if err != nil {
				conn.Close(context.Background())
				conn = nil
			}
			return err
		}()
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			failing = true
			h.logger.Warn("heartbeat failed", "err", pgconn.RedactURL(err.Error()))
		case err == nil && failing:
			failing = false
			h.logger.Info("heartbeat recovered")
		}
	}
}
