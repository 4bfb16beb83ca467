package streamer

import (
	"context"
	"fmt"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/sink"
	"github.com/outbox-cdc/outbox-cdc/sink/file"
	"github.com/outbox-cdc/outbox-cdc/sink/kafka"
	"github.com/outbox-cdc/outbox-cdc/sink/nats"
	"github.com/outbox-cdc/outbox-cdc/sink/redis"
)

// OpenSink opens the sink sc describes, for one-off use (dead-letter replay).
func OpenSink(ctx context.Context, sc config.Sink, opts sink.Options) (sink.Sink, error) {
	return openSink(ctx, sc, opts.WithDefaults())
}

// openSink opens the sink sc describes.
func openSink(ctx context.Context, sc config.Sink, opts sink.Options) (sink.Sink, error) {
	switch sc.Type {
	case "file", "stdout":
		return file.Open(sc.File(), opts)
	case "kafka":
		return kafka.New(ctx, *sc.Brokers.Kafka, opts)
	case "nats":
		return nats.New(ctx, *sc.Brokers.NATS, opts)
	case "redis":
		redis.SetClientLogger(opts.Logger)
		return redis.New(ctx, *sc.Brokers.Redis, opts)
	}
	return nil, fmt.Errorf("sink %s: unknown type %q", sc.Name, sc.Type)
}
