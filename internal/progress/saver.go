package progress

import (
	"context"
	"log/slog"
	"time"
)

// SaveInterval is how often a Saver writes the positions that moved.
const SaveInterval = time.Second

// Saver writes per-sink positions (the checkpoint's Positions) to a Store,
// in batches: every SaveInterval while they move, and once more on Save.
type Saver struct {
	st        *Store
	positions func() map[string]uint64
	logger    *slog.Logger
	saved     map[string]uint64 // Run's goroutine, then the caller of the last Save
}

// NewSaver returns a Saver of positions to st; logger may be nil.
func NewSaver(st *Store, positions func() map[string]uint64, logger *slog.Logger) *Saver {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Saver{st: st, positions: positions, logger: logger, saved: map[string]uint64{}}
}

// Run saves every SaveInterval until ctx is done, then returns nil. A failed
// save is logged and tried again at the next interval.
func (s *Saver) Run(ctx context.Context) error {
	t := time.NewTicker(SaveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.Save(ctx)
		}
	}
}

// Save writes the positions that moved since the last save, and logs a
// failure. Call it from Run's goroutine, or after Run returned.
func (s *Saver) Save(ctx context.Context) {
	changed := map[string]uint64{}
	for k, v := range s.positions() {
		if v > s.saved[k] {
			changed[k] = v
		}
	}
	if len(changed) == 0 {
		return
	}
	if err := s.st.Save(ctx, changed); err != nil {
		s.logger.Warn("cannot save per-sink progress", "err", err)
		return
	}
	for k, v := range changed {
		s.saved[k] = v
	}
}
