package file

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

var _ sink.Sink = (*Sink)(nil)

// Sink writes events as JSON lines. Publish is synchronous: it returns after
// the batch was written (and synced, with Config.Sync) and acknowledged, so
// the sink needs none of the delivery engine's window, resend or
// goroutine (internal/delivery): they would only add a hand-off per batch.
// Publish, Flush and Close are called from one goroutine.
type Sink struct {
	opts   sink.Options
	cfg    Config
	w      io.Writer
	f      *os.File // nil for standard output
	buf    []byte
	closed bool
}

// Open opens the file (or standard output) for appending.
func Open(cfg Config, opts sink.Options) (*Sink, error) {
	opts = opts.WithDefaults()
	name := opts.Name
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sink %s: %w", name, err)
	}
	s := &Sink{opts: opts, cfg: cfg, w: os.Stdout}
	if cfg.Path != "" && cfg.Path != "-" {
		mode := cfg.Mode
		if mode == 0 {
			mode = DefaultMode
		}
		f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, mode)
		if err != nil {
			return nil, fmt.Errorf("sink %s: cannot open %s: %w", name, cfg.Path, err)
		}
		if st, err := f.Stat(); err == nil && st.Mode().Perm()&^mode != 0 {
			opts.Logger.Warn("the file sink's output allows more than its mode: others may read the events; chmod it",
				"sink", name, "path", cfg.Path, "file_mode", fmt.Sprintf("%#o", st.Mode().Perm()), "mode", fmt.Sprintf("%#o", mode))
		}
		s.f, s.w = f, f
	}
	return s, nil
}

// NewWriter returns a sink writing to w, for tests and embedding.
func NewWriter(name string, w io.Writer) *Sink {
	return &Sink{opts: sink.Options{Name: name}.WithDefaults(), w: w}
}

// Publish writes the batch, then acknowledges every event in it. A failed
// write is retried with backoff until it succeeds or ctx is done; a partly
// written batch is written again whole, so a line may repeat after an error.
// After Close it returns sink.ErrClosed.
func (s *Sink) Publish(ctx context.Context, events []*event.Event) error {
	if s.closed {
		return sink.ErrClosed
	}
	buf := s.buf[:0]
	for _, e := range events {
		buf = e.AppendJSON(buf)
		buf = append(buf, '\n')
	}
	for attempt := 1; ; attempt++ {
		err := s.write(buf)
		if err == nil {
			break
		}
		s.opts.Observer.Retried(s.opts.Name, err)
		s.opts.Logger.Warn("sink write failed; retrying", "sink", s.opts.Name, "attempt", attempt, "err", err)
		if err := (retry.Backoff{}).Sleep(ctx, attempt); err != nil {
			return err
		}
	}
	if cap(buf) <= 1<<20 {
		s.buf = buf
	}
	for _, e := range events {
		s.opts.Ack(e)
	}
	return nil
}

func (s *Sink) write(b []byte) error {
	if _, err := s.w.Write(b); err != nil {
		return err
	}
	if s.cfg.Sync && s.f != nil {
		return s.f.Sync()
	}
	return nil
}

// Flush returns at once: Publish acknowledges before it returns. After
// Close it returns sink.ErrClosed.
func (s *Sink) Flush(context.Context) error {
	if s.closed {
		return sink.ErrClosed
	}
	return nil
}

// Close closes the file. It is idempotent.
func (s *Sink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}
