package dlq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// ReplayTimeout bounds the wait for the sink's acknowledgement of a replay.
const ReplayTimeout = 2 * time.Minute

// ErrNotReplayable is matched (errors.Is) by Replay for a letter that is not
// pending, or that holds a row that never became an event.
var ErrNotReplayable = errors.New("dlq: the dead letter cannot be replayed")

// SinkOpener opens the configured sink called name with opts, as `run`
// opens it (wiring.SinkOpener). An error wrapping ErrNotReplayable says there
// is no such sink.
type SinkOpener func(ctx context.Context, name string, opts sink.Options) (sink.Sink, error)

// Replay publishes a pending letter again through its sink, opened by open
// as `run` opens it, waits for the acknowledgement, and marks the letter
// replayed by by. A letter that fails again gets its attempts counted and
// stays pending. It blocks until the sink acknowledged, failed, or
// ReplayTimeout passed.
func (s *Store) Replay(ctx context.Context, open SinkOpener, l Letter, by string) error {
	if l.Status != StatusPending {
		return fmt.Errorf("%w: its status is %s, not pending", ErrNotReplayable, l.Status)
	}
	if l.Sink == DecoderSink || l.Event == nil {
		return fmt.Errorf("%w: a row that could not be decoded cannot be replayed: fix the data, insert a corrected outbox row, then discard this letter", ErrNotReplayable)
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
	done := make(chan struct{})
	var once sync.Once
	snk, err := open(ctx, l.Sink, sink.Options{Name: l.Sink, Ack: func(*event.Event) { once.Do(func() { close(done) }) }})
	if err != nil {
		return err
	}
	defer snk.Close()
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
			err = fmt.Errorf("sink %s did not acknowledge within %s", l.Sink, ReplayTimeout)
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
