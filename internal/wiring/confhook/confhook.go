// Package confhook carries package config's conversions into the plain
// configurations of the internal packages to internal/wiring, so that
// config's public API names only public types while the conversion stays in
// one place, beside the schema and the validation that uses it.
//
// Package config sets every variable in its init; internal/wiring is the
// only reader and gives them typed signatures. (The pattern of
// golang.org/x/tools/internal/packagesinternal: a public package hands
// internals to its own module without exporting them.)
package confhook

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
)

// Conversions of a *config.Config.
var (
	Replication func(cfg any) replication.Config
	Decoder     func(cfg any) decoder.Config
	Checkpoint  func(cfg any) checkpoint.Config
	Observe     func(cfg any) observe.Config
	Retention   func(cfg any) retention.Config
)

// Conversions of a config.Sink.
var (
	File  func(s any) file.Config
	Kafka func(s any) kafka.Config
	NATS  func(s any) nats.Config
	Redis func(s any) redis.Config
)

// Backoff converts a config.Backoff.
var Backoff func(b any) retry.Backoff
