package config

import (
	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/observe"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
	"github.com/outbox-cdc/outbox-cdc/internal/retention"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/file"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/kafka"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/nats"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/redis"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring/confhook"
)

// The conversions into the internal packages' configurations reach
// internal/wiring through confhook: the public API of config names only
// public types.
func init() {
	confhook.Replication = func(c any) replication.Config { return c.(*Config).replicationConfig() }
	confhook.Decoder = func(c any) decoder.Config { return c.(*Config).decoderConfig() }
	confhook.Checkpoint = func(c any) checkpoint.Config { return c.(*Config).checkpointConfig() }
	confhook.Observe = func(c any) observe.Config { return c.(*Config).observeConfig() }
	confhook.Retention = func(c any) retention.Config { return c.(*Config).retentionConfig() }
	confhook.File = func(s any) file.Config { return s.(Sink).fileConfig() }
	confhook.Kafka = func(s any) kafka.Config { return s.(Sink).kafkaConfig() }
	confhook.NATS = func(s any) nats.Config { return s.(Sink).natsConfig() }
	confhook.Redis = func(s any) redis.Config { return s.(Sink).redisConfig() }
	confhook.Backoff = func(b any) retry.Backoff { return b.(Backoff).retry() }
}
