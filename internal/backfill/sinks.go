package backfill

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/nats"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/redis"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// ErrRedisEntryID is matched (errors.Is) when a selected Redis sink runs in
// dedup mode "entryid": its entry ids are "<commit LSN>-<seq>", which a row
// read from the table does not have, and Redis only adds ids above a
// stream's last one, so it cannot take old events.
var ErrRedisEntryID = errors.New(`backfill: redis dedup "entryid" cannot take old events`)

// output is one selected sink.
type output struct {
	sc       config.Sink
	s        sink.Sink // nil in a dry run
	maxBatch int
	pending  []*event.Event // routed, not yet published
	routed   int64
	counts   counter
}

// counter is the sink.Observer of one output.
type counter struct {
	acked, dups atomic.Int64
}

func (c *counter) Acked(string, *event.Event)     { c.acked.Add(1) }
func (c *counter) Retried(string, error)          {}
func (c *counter) Duplicate(string, *event.Event) { c.dups.Add(1) }

var _ sink.Observer = (*counter)(nil)

// selectSinks picks the configured sinks named in Options.Sinks (all when
// none are named) and refuses Redis sinks configured with dedup "entryid".
func (r *runner) selectSinks() error {
	want := map[string]bool{}
	for _, n := range r.opts.Sinks {
		want[n] = true
	}
	var names []string
	for _, sc := range r.cfg.Sinks {
		names = append(names, sc.Name)
		if len(want) > 0 && !want[sc.Name] {
			continue
		}
		delete(want, sc.Name)
		if sc.Type == config.SinkRedis && sc.Redis != nil && string(sc.Redis.Dedup) == redis.DedupEntryID {
			return entryIDError(sc.Name, "")
		}
		maxBatch := sc.MaxBatch
		if maxBatch <= 0 {
			maxBatch = sink.DefaultMaxBatch
		}
		r.outs = append(r.outs, &output{sc: sc, maxBatch: maxBatch})
	}
	for n := range want {
		return fmt.Errorf("backfill: --sink %s: no sink of that name in the config (configured: %s)", n, strings.Join(names, ", "))
	}
	return nil
}

func entryIDError(name, how string) error {
	return fmt.Errorf(`%w: sink %s: redis dedup "entryid"%s names entries "<commit LSN>-<seq>", which a row read from the table does not have, `+
		"and Redis only adds ids above a stream's last one: set dedup: guard on this sink (or idmp on Redis 8.6+; see docs/sinks/redis.md), "+
		"or leave it out with --sink", ErrRedisEntryID, name, how)
}

// openSinks opens every selected sink as `run` would, except that a NATS
// sink publishes with relaxed_order: old events cannot follow the stream's
// last message in its Nats-Expected-Last-Msg-Id chain.
func (r *runner) openSinks(ctx context.Context) error {
	for _, o := range r.outs {
		sc := o.sc
		if sc.Type == config.SinkNATS && sc.NATS != nil {
			n := *sc.NATS
			n.RelaxedOrder = true
			sc.NATS = &n
		}
		s, err := wiring.OpenSink(ctx, sc, sink.Options{Name: sc.Name, Logger: r.opts.Logger, Observer: &o.counts})
		if err != nil {
			return err
		}
		o.s = s
		if d, ok := s.(interface{ Dedup() string }); ok && sc.Type == config.SinkRedis && d.Dedup() == redis.DedupEntryID {
			return entryIDError(sc.Name, " (the mode dedup: auto chose on this server)")
		}
	}
	return nil
}

func (r *runner) closeSinks() {
	for _, o := range r.outs {
		if o.s != nil {
			o.s.Close()
		}
	}
}

// plan writes, per sink, how its broker treats events it already holds.
func (r *runner) plan() {
	for _, o := range r.outs {
		var how string
		switch o.sc.Type {
		case "kafka":
			how = "no broker dedup: consumers see an event again and drop it by its source and id"
		case "nats":
			window := nats.DefaultDuplicateWindow.String() + " unless the stream was created with another duplicate_window"
			if n := wiring.NATS(o.sc); o.sc.NATS != nil && n.Stream.Create && n.Stream.DuplicateWindow > 0 {
				window = n.Stream.DuplicateWindow.String()
			}
			how = "the stream drops an event it stored within its duplicate window (" + window + "); published with relaxed_order"
		case "redis":
			mode := wiring.Redis(o.sc).WithDefaults().Dedup
			how = "dedup " + mode + ": "
			switch mode {
			case redis.DedupGuard:
				how += "an event whose guard key has not expired is dropped (guard_ttl " + wiring.Redis(o.sc).WithDefaults().GuardTTL.String() + ")"
			case redis.DedupIDMP:
				how += "Redis drops an event it still remembers (stream-idmp-duration)"
			case redis.DedupNone:
				how += "every event is added again"
			default:
				how += "the mode is chosen when the sink connects"
			}
		default:
			how = "no dedup: every event is written again"
		}
		fmt.Fprintf(r.opts.Out, "backfill: sink %s (%s): %s\n", o.sc.Name, o.sc.Type, how)
	}
}

// publish hands every routed event to its sink and waits until all are
// acknowledged. table names the rows for errors.
func (r *runner) publish(ctx context.Context, table string) error {
	if r.opts.DryRun {
		return nil
	}
	for _, o := range r.outs {
		for b := o.pending; len(b) > 0; {
			n := min(len(b), o.maxBatch)
			if err := o.s.Publish(ctx, b[:n]); err != nil {
				return sinkError(ctx, table, o, err)
			}
			b = b[n:]
		}
	}
	for _, o := range r.outs {
		if len(o.pending) == 0 {
			continue
		}
		if err := o.s.Flush(ctx); err != nil {
			return sinkError(ctx, table, o, err)
		}
		clear(o.pending)
		o.pending = o.pending[:0]
		if a := o.counts.acked.Load(); a != o.routed {
			return fmt.Errorf("backfill: sink %s acknowledged %d of the %d events routed to it", o.sc.Name, a, o.routed)
		}
	}
	return nil
}

func sinkError(ctx context.Context, table string, o *output, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("backfill: interrupted while sink %s had events unacknowledged: %w", o.sc.Name, ctx.Err())
	}
	var perr *sink.PermanentError
	if errors.As(err, &perr) {
		return fmt.Errorf("backfill: %s row %s: %w", table, perr.EventID, err)
	}
	return fmt.Errorf("backfill: sink %s: %w", o.sc.Name, err)
}

// collect copies the sinks' counts into the summary.
func (r *runner) collect() {
	r.sum.Sinks = r.sum.Sinks[:0]
	for _, o := range r.outs {
		r.sum.Sinks = append(r.sum.Sinks, SinkSummary{Name: o.sc.Name, Type: string(o.sc.Type), Routed: o.routed,
			Acked: o.counts.acked.Load(), Duplicates: o.counts.dups.Load()})
	}
}
