// Package wiring turns the public configuration (package config) into the
// plain configurations of the packages that do the work, and opens the
// configured sinks. The application, the commands and backfill use it; the
// conversions themselves live in package config, beside the schema and the
// validation that uses them (see package confhook).
package wiring

import (
	"context"
	"fmt"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/dlq"
	"github.com/outbox-cdc/outbox-cdc/internal/fanout"
	"github.com/outbox-cdc/outbox-cdc/internal/observe"
	"github.com/outbox-cdc/outbox-cdc/internal/pgconn"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
	"github.com/outbox-cdc/outbox-cdc/internal/retention"
	"github.com/outbox-cdc/outbox-cdc/internal/schema"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/file"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/kafka"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/nats"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/redis"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring/confhook"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Postgres returns the connection settings every connection to the source
// database uses.
func Postgres(cfg *config.Config) pgconn.Config {
	return pgconn.Config{URL: cfg.Postgres.URL, ConnectTimeout: cfg.Postgres.ConnectTimeout}
}

// Names returns the server objects cfg names.
func Names(cfg *config.Config) schema.Names {
	return schema.Names{Slot: cfg.Postgres.Slot, Publication: cfg.Postgres.Publication, Tables: cfg.TableNames(),
		DeadLetter: cfg.DeadLetter.Table, DDLGuard: string(cfg.Postgres.DDLGuard), FailoverSlot: string(cfg.Postgres.FailoverSlot)}
}

// Replication returns the replication stream's configuration.
func Replication(cfg *config.Config) replication.Config { return confhook.Replication(cfg) }

// Decoder returns the decoder's configuration.
func Decoder(cfg *config.Config) decoder.Config { return confhook.Decoder(cfg) }

// Checkpoint returns the window bounds.
func Checkpoint(cfg *config.Config) checkpoint.Config { return confhook.Checkpoint(cfg) }

// Observe returns the HTTP server's configuration.
func Observe(cfg *config.Config) observe.Config { return confhook.Observe(cfg) }

// Retention returns the outbox pruning configuration.
func Retention(cfg *config.Config) retention.Config { return confhook.Retention(cfg) }

// File returns a file or stdout sink's configuration.
func File(s config.Sink) file.Config { return confhook.File(s) }

// Kafka returns a kafka sink's configuration (zero fields mean the kafka
// package's defaults); the zero Config when the sink has no kafka section.
func Kafka(s config.Sink) kafka.Config { return confhook.Kafka(s) }

// NATS returns a nats sink's configuration (zero fields mean the nats
// package's defaults); the zero Config when the sink has no nats section.
func NATS(s config.Sink) nats.Config { return confhook.NATS(s) }

// Redis returns a redis sink's configuration (zero fields mean the redis
// package's defaults); the zero Config when the sink has no redis section.
func Redis(s config.Sink) redis.Config { return confhook.Redis(s) }

// Target returns the fan-out settings of a configured sink; the caller adds
// the sink itself, its reopen function and its observer.
func Target(s config.Sink) fanout.Target {
	return fanout.Target{Name: s.Name, Route: s.Route.Sink(), MaxBatch: s.MaxBatch, Policy: s.Policy, Backoff: confhook.Backoff(s.Retry)}
}

// OpenSink opens the sink sc describes; opts' nil fields take their
// defaults. It connects and checks what the sink can check (a broker's
// reachability, a stream's existence) and returns those errors.
func OpenSink(ctx context.Context, sc config.Sink, opts sink.Options) (sink.Sink, error) {
	opts = opts.WithDefaults()
	switch sc.Type {
	case config.SinkFile, config.SinkStdout:
		return file.Open(File(sc), opts)
	case config.SinkKafka:
		return kafka.New(ctx, Kafka(sc), opts)
	case config.SinkNATS:
		return nats.New(ctx, NATS(sc), opts)
	case config.SinkRedis:
		redis.SetClientLogger(opts.Logger)
		return redis.New(ctx, Redis(sc), opts)
	}
	return nil, fmt.Errorf("sink %s: unknown type %q", sc.Name, sc.Type)
}

// SinkOpener returns a dlq.SinkOpener for the sinks of cfg: it opens the
// sink of that name as OpenSink does, and says (dlq.ErrNotReplayable) when
// the config has none.
func SinkOpener(cfg *config.Config) dlq.SinkOpener {
	return func(ctx context.Context, name string, opts sink.Options) (sink.Sink, error) {
		for _, sc := range cfg.Sinks {
			if sc.Name == name {
				return OpenSink(ctx, sc, opts)
			}
		}
		return nil, fmt.Errorf("%w: no sink named %q in the config", dlq.ErrNotReplayable, name)
	}
}
