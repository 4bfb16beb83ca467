package dlq

import (
	"context"
	"log/slog"

	"github.com/outbox-cdc/outbox-cdc/internal/retry"
)

// Keep runs put until it stores its letter, or ctx is done, and returns nil
// or ctx's error. Every failed attempt is retried after a backoff (the
// retry.Backoff defaults: 100ms doubling to 30s, full jitter), whatever the
// error: storing the letter is the dead-letter policy's only way on, so the
// store is waited for as a broker is, and the slot holds meanwhile; an error
// retrying cannot fix (a missing table, a missing privilege, see Error) says
// what to do in the log and is fixed without a restart. The first failure of
// a run logs one warning with attrs (what could not be stored) and the
// error, the store's recovery one info line. retried, if set, is told of every
// failed attempt. Keep is the one retry loop for dead letters: the fan-out's
// (events a sink cannot take) and the decoder's (rows that cannot become
// events).
func Keep(ctx context.Context, logger *slog.Logger, retried func(error), put func(context.Context) error, attrs ...any) error {
	for try := 1; ; try++ {
		err := put(ctx)
		if err == nil {
			if try > 1 {
				logger.Info("dead-letter store reachable again", append(attrs[:len(attrs):len(attrs)], "failed_attempts", try-1)...)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if try == 1 {
			logger.Warn("cannot store dead letter; retrying", append(attrs[:len(attrs):len(attrs)], "err", err)...)
		}
		if retried != nil {
			retried(err)
		}
		if err := (retry.Backoff{}).Sleep(ctx, try); err != nil {
			return err
		}
	}
}
