package outboxcdc

import (
	"context"
	"log/slog"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/progress"
)

// progressSaver writes the fan-out's per-sink progress to the progress
// table, every second while it changes, and once more at the end of a stop.
type progressSaver struct {
	st       *progress.Store
	progress func() map[string]uint64 // the fan-out's Progress
	logger   *slog.Logger
	saved    map[string]uint64 // run's goroutine, then the caller of the last save
}

// run saves every second until ctx is done.
func (p *progressSaver) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.save(ctx)
		}
	}
}

// save writes the positions that moved since the last save.
func (p *progressSaver) save(ctx context.Context) {
	changed := map[string]uint64{}
	for k, v := range p.progress() {
		if v > p.saved[k] {
			changed[k] = v
		}
	}
	if len(changed) == 0 {
		return
	}
	if err := p.st.Save(ctx, changed); err != nil {
		p.logger.Warn("cannot save per-sink progress", "err", err)
		return
	}
	for k, v := range changed {
		p.saved[k] = v
	}
}
