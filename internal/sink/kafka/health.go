package kafka

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outbox-cdc/outbox-cdc/internal/delivery"
)

func brokerAddr(m kgo.BrokerMetadata) string {
	return net.JoinHostPort(m.Host, strconv.Itoa(int(m.Port)))
}

// hooks feeds the sink's delivery.Health from franz-go's per-connection and
// per-request signals, keyed by broker address: one log line when a broker
// becomes unreachable, one when a connection to it or a produce request
// through it succeeds again, and Observer.Retried for every failed attempt
// in between, so that one dead broker of three does not make the others'
// traffic flap the state. franz-go itself retries; the hooks only watch.
type hooks struct{ h *delivery.Health }

var (
	_ kgo.HookBrokerConnect       = hooks{}
	_ kgo.HookBrokerWrite         = hooks{}
	_ kgo.HookBrokerRead          = hooks{}
	_ kgo.HookProduceBatchWritten = hooks{}
)

func (k hooks) OnBrokerConnect(m kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err != nil {
		k.h.Failed(brokerAddr(m), err)
		return
	}
	k.h.OK(brokerAddr(m))
}

func (k hooks) OnBrokerWrite(m kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		k.h.Failed(brokerAddr(m), err)
	}
}

func (k hooks) OnBrokerRead(m kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	if err != nil {
		k.h.Failed(brokerAddr(m), err)
	}
}

func (k hooks) OnProduceBatchWritten(m kgo.BrokerMetadata, _ string, _ int32, _ kgo.ProduceBatchMetrics) {
	k.h.OK(brokerAddr(m))
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
