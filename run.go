package outboxcdc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/retention"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/internal/schema"
	"github.com/outbox-cdc/outbox-cdc/internal/supervise"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
)

// Run streams until ctx is done, then shuts down (see the package
// documentation) and returns nil. It returns an error when something
// reconnecting cannot fix stopped the stream: a row that cannot become a
// CloudEvent (outbox.on_invalid: block), a sink that failed for good, an
// outbox table that left the publication, an invalidated slot. With
// http.linger it keeps /readyz and /metrics up that long before returning
// such an error (ctx being done ends the linger).
//
// Run returns only after every goroutine it started has exited; a sink
// that does not stop or close within the shutdown budget is the one thing
// it leaves behind, naming it in the log. It releases everything New
// opened. It runs once: a second call returns ErrClosed.
func (a *App) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.state != built {
		a.mu.Unlock()
		return ErrClosed
	}
	a.state = running
	streamCtx, stopStream := context.WithCancelCause(ctx)
	a.stopRun = stopStream
	a.streamCtx = streamCtx
	a.mu.Unlock()
	defer a.release()
	defer stopStream(nil)

	cfg, g := a.cfg, &a.group
	b := &budget{drain: cfg.Postgres.DrainTimeout}
	stopWatch := context.AfterFunc(streamCtx, b.mark)
	defer stopWatch()
	// The sinks run on their own context: at a stop they keep delivering
	// while the stream drains. The HTTP server outlives them: with
	// http.linger it still answers /readyz and /metrics after a stop for
	// good.
	base := context.WithoutCancel(ctx)
	sinkCtx, cancelSinks := context.WithCancel(base)
	defer cancelSinks()
	serverCtx, cancelServer := context.WithCancel(base)
	defer cancelServer()

	// Every goroutine is started into the group; none can be refused
	// before the group's Wait below.
	spawn := func(name string, fn func() error) *supervise.Task {
		t, _ := g.Go(name, fn)
		return t
	}
	httpTask := spawn("http server", func() error { return a.server.Run(serverCtx) })
	var adminTask *supervise.Task
	if a.admin != nil {
		adminTask = spawn("admin history", func() error { a.admin.Run(serverCtx); return nil })
	}
	fanTask := spawn("sink fan-out", func() error {
		err := a.fan.Run(sinkCtx)
		if err != nil {
			stopStream(err) // a sink failed for good: stop reading, drain, confirm
		}
		return err
	})
	sinkSide := []*supervise.Task{fanTask}
	if a.saver != nil {
		sinkSide = append(sinkSide, spawn("progress saver", func() error { return a.saver.Run(sinkCtx) }))
	}
	helpers := []*supervise.Task{spawn("catalog watcher", func() error { a.cat.Run(streamCtx, a.cp.Unbounded); return nil })}
	if a.retPool != nil {
		helpers = append(helpers, spawn("retention", func() error {
			retention.Run(streamCtx, a.retPool, cfg.TableNames(), wiring.Retention(cfg), a.cp.LastAcked, a.logger)
			return nil
		}))
	}
	if a.beat != nil {
		helpers = append(helpers, spawn("heartbeat", func() error { a.beat.run(streamCtx); return nil }))
	}
	a.logger.Info("outbox-cdc starting", "version", a.opts.Version, "slot", cfg.Postgres.Slot,
		"publication", cfg.Postgres.Publication, "sinks", len(a.targets))

	// 1. Stop reading WAL. At a stop the stream stops reading, waits until
	// the sinks acknowledge what is in flight or the drain budget is spent
	// (its DrainTimeout counts from the same stop), sends the last standby
	// status and closes its connection within closeTail.
	streamTask := spawn("replication stream", func() error { return a.stream.Run(streamCtx) })
	streamErr := streamTask.Wait(context.Background())
	b.mark()
	stopStream(nil)
	drainCtx, cancelDrain := context.WithDeadline(base, b.drainDeadline())
	defer cancelDrain()
	// Its helpers end with it: the catalog watcher, retention, the heartbeat
	// (nothing may write to the server once the stream is stopped).
	supervise.WaitAll(drainCtx, helpers...)
	if d := a.cat.Drift(); d != nil && !errors.As(streamErr, new(*schema.DriftError)) {
		streamErr = errors.Join(d, streamErr)
	}
	var decErr *decoder.Error
	if errors.As(streamErr, &decErr) {
		a.metrics.DecodeError()
		if errors.Is(decErr, decoder.ErrNonTransactional) {
			a.metrics.NonTransactionalMessage()
		}
	}

	// 2. Drain the sinks: the fan-out hands over what is queued until the
	// drain budget is spent; then the sinks are cancelled.
	a.fan.Stop()
	select {
	case <-fanTask.Done():
	case <-drainCtx.Done():
	}
	cancelSinks()

	// 3. Close, within closeTail: the sinks, the last per-sink progress.
	closeBy := later(b.drainDeadline(), time.Now()).Add(closeTail)
	closeCtx, cancelClose := context.WithDeadline(base, closeBy)
	defer cancelClose()
	if supervise.WaitAll(closeCtx, sinkSide...) != nil {
		a.logger.Warn("sink pipelines did not stop within the shutdown budget; leaving them")
	}
	fanErr := fanTask.Err()
	a.sinksClosing.Store(true)
	closing := spawn("closing sinks", func() error { return a.fan.CloseContext(closeCtx) })
	if err := closing.Wait(closeCtx); err != nil {
		a.logger.Warn("sinks did not close within the shutdown budget; leaving them", "err", err)
	}
	if a.saver != nil && supervise.WaitAll(closeCtx, sinkSide...) == nil {
		a.saver.Save(closeCtx)
	}
	supervise.WaitAll(closeCtx, helpers...)

	confirmed := decoder.FormatLSN(a.stream.Reported())
	if txs, events := a.cp.Unconfirmed(); txs > 0 || events > 0 {
		a.logger.Warn("stopped with events unconfirmed; the server sends them again at the next start",
			"events", events, "transactions", txs, "confirmed", confirmed, "sinks", a.unacknowledged())
	}
	err := errors.Join(streamErr, fanErr)
	if err != nil && cfg.HTTP.Linger > 0 && cfg.HTTP.Addr != "-" {
		if a.cat.Drift() == nil {
			a.server.Fault("stream", err)
		}
		a.logger.Error("the stream stopped; serving /readyz and /metrics before exiting", "linger", cfg.HTTP.Linger, "err", err)
		t := time.NewTimer(cfg.HTTP.Linger)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	// 4. The HTTP server ends last: requests in progress get closeTail.
	cancelServer()
	httpCtx, cancelHTTP := context.WithTimeout(base, 2*closeTail)
	defer cancelHTTP()
	if herr := httpTask.Wait(httpCtx); herr != nil {
		a.logger.Warn("http server did not stop cleanly", "err", herr)
	}
	if adminTask != nil {
		adminTask.Wait(httpCtx)
	}
	// Every task was waited for above; what the budget left behind is named.
	endCtx, cancelEnd := context.WithDeadline(base, later(time.Now(), closeBy))
	defer cancelEnd()
	if gerr := g.Wait(endCtx); gerr != nil {
		a.logger.Warn("components did not stop within the shutdown budget; leaving them", "err", gerr)
	}
	if err != nil {
		return err
	}
	a.logger.Info("outbox-cdc stopped", "confirmed", confirmed)
	return nil
}

// budget is the one shutdown budget: from the stop (the first mark), the
// stream and the sinks drain for at most drain; closing takes at most
// closeTail more.
type budget struct {
	drain time.Duration
	once  sync.Once
	at    time.Time
}

// mark records the stop; later calls change nothing.
func (b *budget) mark() { b.once.Do(func() { b.at = time.Now() }) }

// drainDeadline is when draining must end. Call it after mark.
func (b *budget) drainDeadline() time.Time {
	b.mark()
	return b.at.Add(b.drain)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// unacknowledged names the sinks holding events they did not acknowledge,
// for the log line of a stop that left events unconfirmed.
func (a *App) unacknowledged() string {
	var names []string
	for name, n := range a.metrics.Pending() {
		if n > 0 {
			names = append(names, fmt.Sprintf("%s (%d)", name, n))
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// sleep waits before retry number try, with the default backoff.
func sleep(ctx context.Context, try int) error { return (retry.Backoff{}).Sleep(ctx, try) }
