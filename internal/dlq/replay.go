package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// ReplayTimeout bounds the wait for the sink's acknowledgement of a replay.
const ReplayTimeout = 2 * time.Minute

// ErrNotReplayable is matched (errors.Is) by Replay for a letter that is not
// pending, or that holds a row that never became an event.
var ErrNotReplayable = errors.New("dlq: the dead letter cannot be replayed")

type doneTracker chan struct{}

func (d doneTracker) Done(*event.Event) { close(d) }

// Replay publishes a pending letter again through its sink, opened from cfg
// as `run` opens it, waits for the acknowledgement, and marks the letter
// replayed by by. A letter that fails again gets its attempts counted and
// stays pending. It blocks until the sink acknowledged, failed, or
// ReplayTimeout passed.
func (s *Store) Replay(ctx context.Context, cfg *config.Config, l Letter, by string) error {
	if l.Status != StatusPending {
		return fmt.Errorf("%w: its status is %s, not pending", ErrNotReplayable, l.Status)
	}
	if l.Sink == DecoderSink || l.Event == nil {
		return fmt.Errorf("%w: a row that could not be decoded cannot be replayed: fix the data, insert a corrected outbox row, then discard this letter", ErrNotReplayable)
	}
	var sc *config.Sink
	for i := range cfg.Sinks {
		if cfg.Sinks[i].Name == l.Sink {
			sc = &cfg.Sinks[i]
		}
	}
	if sc == nil {
		return fmt.Errorf("%w: no sink named %q in the config", ErrNotReplayable, l.Sink)
	}
	e, err := event.ParseJSON(l.Event)
	if err != nil {
		return err
	}
	e.AggregateType, e.Table = l.AggregateType, l.Table
	if l.Position != nil {
		e.Seq = *l.Position // a Redis sink derives its entry id from it
	}
	if lsn, err := pglogrepl.ParseLSN(l.CommitLSN); err == nil {
		e.CommitLSN = uint64(lsn)
	}
	snk, err := wiring.OpenSink(ctx, *sc, sink.Options{Name: sc.Name})
	if err != nil {
		return err
	}
	defer snk.Close()
	done := make(doneTracker)
	e.Track(done, 1)
	rctx, cancel := context.WithTimeout(ctx, ReplayTimeout)
	defer cancel()
	err = snk.Publish(rctx, []*event.Event{e})
	if err == nil {
		err = snk.Flush(rctx)
	}
	if err == nil {
		select {
		case <-done:
		case <-rctx.Done():
			err = fmt.Errorf("sink %s did not acknowledge within %s", sc.Name, ReplayTimeout)
		}
	}
	if err != nil {
		if ferr := s.Failed(ctx, l.ID, err); ferr != nil {
			return errors.Join(err, ferr)
		}
		return fmt.Errorf("failed again (attempts counted): %w", err)
	}
	return s.Resolve(ctx, l.ID, StatusReplayed, by)
}
