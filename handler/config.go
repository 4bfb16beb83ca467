package handler

import (
	"log/slog"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/retry"
)

// Defaults of Config's zero fields.
const (
	DefaultConcurrency    = 16
	DefaultMaxBuffered    = 1024
	DefaultAttempts       = 5
	DefaultReplayInterval = 5 * time.Second
	DefaultDrainTimeout   = 30 * time.Second
	DefaultRetention      = 7 * 24 * time.Hour
	DefaultPruneInterval  = time.Hour
)

// Backoff is an exponential backoff with full jitter: the delay after
// failed attempt n is uniform in [0, min(Max, Initial·Multiplier^(n-1))].
// Zero fields take the defaults shown.
type Backoff struct {
	// Initial caps the first delay. Default 100ms.
	Initial time.Duration
	// Max caps every delay. Default 30s.
	Max time.Duration
	// Multiplier grows the cap per attempt. Default 2.
	Multiplier float64
}

func (b Backoff) retry() retry.Backoff {
	return retry.Backoff{Initial: b.Initial, Max: b.Max, Multiplier: b.Multiplier}
}

// Delay returns a delay for after failed attempt n (n >= 1), with jitter.
func (b Backoff) Delay(n int) time.Duration { return b.retry().Delay(n) }

// Config configures a Consumer.
type Config struct {
	// Name identifies the consumer: the inbox records events per name, and
	// `outbox-cdc inbox` lists them by it. Required. Sources take their
	// consumer group or durable name separately.
	Name string
	// Concurrency is the most keys handled at once. Default 16.
	Concurrency int
	// MaxBuffered is the most deliveries held at once, queued or running;
	// Submit blocks beyond it. Default 1024. Keep the brokers' prefetch
	// (NATS MaxAckPending, Kafka MaxPollRecords, Redis Count) at or below
	// it.
	MaxBuffered int
	// Attempts is how many times an event is tried before it is parked
	// (or, without DeadLetters, handed back to the broker). Default 5.
	Attempts int
	// Backoff spaces the attempts of one event. Default 100ms doubling to
	// 30s, full jitter.
	Backoff Backoff
	// Store, when set, runs every attempt through it so that an event takes
	// effect once: use an inbox from handler/inbox. Default none: handlers
	// must then be idempotent themselves.
	Store Store
	// DeadLetters, when set, parks events that failed every attempt, and
	// replays the ones marked for replay. It requires Store (replays must
	// take effect once). The inbox implements both.
	DeadLetters DeadLetters
	// ReplayInterval is how often DeadLetters is asked for events marked
	// for replay. Default 5s.
	ReplayInterval time.Duration
	// Retention: inbox rows of events handled longer ago than this are
	// pruned, when Store can prune (has Prune(ctx, age) (int64, error)).
	// Default 7 days; negative: never. Keep it longer than the longest
	// redelivery you expect (a consumer group reset, a replayed backlog).
	Retention time.Duration
	// PruneInterval is the time between pruning rounds. Default 1h.
	PruneInterval time.Duration
	// DrainTimeout bounds how long a stopping Consumer waits for running
	// handlers before it cancels their ctx. Default 30s.
	DrainTimeout time.Duration
	// Observer receives metrics signals. Default none.
	Observer Observer
	// Logger receives one line per state change. Default discards.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxBuffered <= 0 {
		c.MaxBuffered = DefaultMaxBuffered
	}
	if c.Attempts <= 0 {
		c.Attempts = DefaultAttempts
	}
	if c.ReplayInterval <= 0 {
		c.ReplayInterval = DefaultReplayInterval
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.PruneInterval <= 0 {
		c.PruneInterval = DefaultPruneInterval
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	if c.Name == "" {
		return &ConfigError{Field: "Config.Name", Reason: "required: the inbox records events per consumer name"}
	}
	if c.DeadLetters != nil && c.Store == nil {
		return &ConfigError{Field: "Config.DeadLetters", Reason: "requires Config.Store, so that a replayed event takes effect once (an inbox is both)"}
	}
	return nil
}
