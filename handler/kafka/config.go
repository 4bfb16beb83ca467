package kafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of Config's zero fields.
const (
	DefaultCommitInterval = time.Second
	DefaultMaxPollRecords = 500
)

// Config configures a Source.
type Config struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// Topics are the topics to read. Required.
	Topics []string
	// Group is the consumer group. Required.
	Group string
	// StartAt is where a group without a committed offset starts:
	// "earliest" (default) or "latest".
	StartAt string
	// InstanceID makes the member static (KIP-345): a member restarting
	// with the same id takes its partitions back at once, without a
	// rebalance or waiting for the old session to expire. Give each
	// instance its own stable id (a StatefulSet pod name). Default none.
	InstanceID string
	// SessionTimeout is how long the group coordinator waits for a member
	// that stopped heartbeating (a killed process) before it moves that
	// member's partitions. Default franz-go's, 45s.
	SessionTimeout time.Duration
	// RebalanceTimeout bounds how long members may take to hand back
	// revoked partitions: in-flight handlers of a revoked partition finish
	// within it. Default franz-go's, 60s.
	RebalanceTimeout time.Duration
	// CommitInterval is how often offsets below which every record was
	// handled are committed. Default 1s. Revoked partitions and a stop
	// commit at once.
	CommitInterval time.Duration
	// MaxPollRecords bounds the records taken per poll. Default 500.
	MaxPollRecords int
	// Options are extra franz-go options (TLS, SASL, client id), applied
	// after the source's own.
	Options []kgo.Opt
}

func (c Config) withDefaults() Config {
	if c.CommitInterval <= 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = DefaultMaxPollRecords
	}
	if c.StartAt == "" {
		c.StartAt = "earliest"
	}
	return c
}
