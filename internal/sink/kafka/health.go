package kafka

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outbox-cdc/outbox-cdc/sink"
)

// health turns franz-go's per-connection and per-request signals into
// per-broker up/down state: one log line when a broker becomes unreachable,
// one when a connection to it or a produce request through it succeeds
// again, and Observer.Retried for every failed attempt in between. Keyed by
// address, so one dead broker of three does not make the others' traffic
// flap the state. franz-go itself retries; health only watches.
type health struct {
	name     string
	logger   *slog.Logger
	observer sink.Observer
	muted    atomic.Bool // during startup checks (their error is returned) and after Close

	ndown atomic.Int32 // len(down), for a lock-free fast path in ok
	mu    sync.Mutex
	down  map[string]*outage
}

type outage struct {
	since    time.Time
	failures int
}

func brokerAddr(m kgo.BrokerMetadata) string {
	return net.JoinHostPort(m.Host, strconv.Itoa(int(m.Port)))
}

// failed records a failed attempt; broker is "" when the failure is not tied
// to one broker (an admin request that got no answer).
func (h *health) failed(broker string, err error) {
	if h.muted.Load() || err == nil {
		return
	}
	h.observer.Retried(h.name, err)
	if broker == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if o := h.down[broker]; o != nil {
		o.failures++
		return
	}
	if h.down == nil {
		h.down = map[string]*outage{}
	}
	h.down[broker] = &outage{since: time.Now(), failures: 1}
	h.ndown.Add(1)
	h.logger.Warn("kafka broker unreachable; holding acknowledgements and retrying", "sink", h.name, "broker", broker, "err", err)
}

func (h *health) ok(broker string) {
	if h.ndown.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	o := h.down[broker]
	if o == nil {
		return
	}
	delete(h.down, broker)
	h.ndown.Add(-1)
	h.logger.Info("kafka broker reachable again", "sink", h.name, "broker", broker, "down_for", time.Since(o.since).Round(time.Millisecond), "failed_attempts", o.failures)
}

// hooks feeds health from franz-go's hooks.
type hooks struct{ h *health }

var (
	_ kgo.HookBrokerConnect       = hooks{}
	_ kgo.HookBrokerWrite         = hooks{}
	_ kgo.HookBrokerRead          = hooks{}
	_ kgo.HookProduceBatchWritten = hooks{}
)

func (k hooks) OnBrokerConnect(m kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		k.h.failed(brokerAddr(m), err)
		return
	}
	k.h.ok(brokerAddr(m))
}

func (k hooks) OnBrokerWrite(m kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		k.h.failed(brokerAddr(m), err)
	}
}

func (k hooks) OnBrokerRead(m kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		k.h.failed(brokerAddr(m), err)
	}
}

func (k hooks) OnProduceBatchWritten(m kgo.BrokerMetadata, _ string, _ int32, _ kgo.ProduceBatchMetrics) {
	k.h.ok(brokerAddr(m))
}

// kgoLogger passes franz-go's own log lines to the sink's logger: errors
// only, or everything from debug up when the logger is enabled for debug.
// franz-go logs per retry at warn and info, which would break the one line
// per state change rule.
type kgoLogger struct {
	l     *slog.Logger
	level kgo.LogLevel
}

func newKgoLogger(l *slog.Logger, name string) kgoLogger {
	level := kgo.LogLevelError
	if l.Enabled(context.Background(), slog.LevelDebug) {
		level = kgo.LogLevelDebug
	}
	return kgoLogger{l: l.With("sink", name, "component", "franz-go"), level: level}
}

func (k kgoLogger) Level() kgo.LogLevel { return k.level }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var sl slog.Level
	switch level {
	case kgo.LogLevelError:
		sl = slog.LevelError
	case kgo.LogLevelWarn:
		sl = slog.LevelWarn
	case kgo.LogLevelInfo:
		sl = slog.LevelInfo
	default:
		sl = slog.LevelDebug
	}
	k.l.Log(context.Background(), sl, msg, keyvals...)
}
