package streamer

import (
	"context"
	"fmt"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/file"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/kafka"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/nats"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/redis"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// OpenSink opens the sink sc describes, for one-off use (dead-letter replay).
func OpenSink(ctx context.Context, sc config.Sink, opts sink.Options) (sink.Sink, error) {
	return openSink(ctx, sc, opts.WithDefaults())
}

// openSink opens the sink sc describes.
func openSink(ctx context.Context, sc config.Sink, opts sink.Options) (sink.Sink, error) {
	switch sc.Type {
	case config.SinkFile, config.SinkStdout:
		return file.Open(sc.File(), opts)
	case config.SinkKafka:
		return kafka.New(ctx, sc.KafkaConfig(), opts)
	case config.SinkNATS:
		return nats.New(ctx, sc.NATSConfig(), opts)
	case config.SinkRedis:
		redis.SetClientLogger(opts.Logger)
		return redis.New(ctx, sc.RedisConfig(), opts)
	}
	return nil, fmt.Errorf("sink %s: unknown type %q", sc.Name, sc.Type)
}
