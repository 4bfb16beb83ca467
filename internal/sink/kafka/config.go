package kafka

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/tlsconf"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Defaults for Config's zero fields.
const (
	DefaultTopic          = "outbox.{{.AggregateType}}"
	DefaultClientID       = "outbox-cdc"
	DefaultMaxInFlight    = 4096
	DefaultConnectTimeout = 10 * time.Second
	DefaultCompression    = "lz4"
	DefaultLinger         = 2 * time.Millisecond
	// DefaultBatchMaxBytes is used for a topic whose max.message.bytes
	// cannot be read; it is franz-go's default, below Kafka's default
	// message.max.bytes of 1048588.
	DefaultBatchMaxBytes = 1000012
	// DefaultRetryMax caps the delay between retries (retry.Backoff's
	// own default of 30s would leave a recovered broker idle for up to
	// half a minute).
	DefaultRetryMax = 2 * time.Second

	maxBatchMaxBytes = 64 << 20 // below franz-go's 100 MiB broker write limit
	minBatchMaxBytes = 1 << 10
)

// Content modes of the CloudEvents Kafka protocol binding.
const (
	ModeBinary     = "binary"
	ModeStructured = "structured"
)

// Config configures a Kafka sink. In the main configuration file it sits
// under the sink's `kafka:` key. The zero value of every field but Brokers
// means its default.
type Config struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// ClientID is sent to the brokers (their logs and quotas). Default
	// "outbox-cdc".
	ClientID string
	// Topic names each event's topic as a template over the event
	// (sink.ParseTemplate), e.g. "outbox.{{.AggregateType}}" (the default)
	// or a fixed name such as "orders".
	Topic string
	// ContentMode is "binary" (the default: data as the record value,
	// attributes as ce_* headers) or "structured" (the whole event as
	// CloudEvents JSON in the value, content-type
	// application/cloudevents+json).
	ContentMode string

	// CreateTopics makes the sink create missing topics (at startup for a
	// fixed topic, on first use for a templated one). Default false: a
	// fixed topic must exist at startup, and an event routed to a missing
	// topic is a permanent error.
	CreateTopics bool
	// Partitions of created topics. Default 0: the broker's num.partitions.
	// Needs CreateTopics.
	Partitions int32
	// ReplicationFactor of created topics. Default 0: the broker's
	// default.replication.factor. Needs CreateTopics.
	ReplicationFactor int16
	// TopicConfig holds topic-level configs for created topics, e.g.
	// {"retention.ms": "604800000"}. Default none. Needs CreateTopics.
	TopicConfig map[string]string

	// Compression codec of record batches: "none", "gzip", "snappy", "lz4"
	// or "zstd". Default "lz4": the cheapest codec in CPU, which typically
	// shrinks JSON events 2-4x on the wire and on the brokers' disks.
	Compression string
	// Linger is how long a partition waits for more records before a batch
	// is sent. Default 2ms: at 5,000 events/s it adds at most 2ms of
	// latency, and it keeps batches large when the CPU is contended, which
	// spares the broker many tiny requests. A negative value (e.g. "-1ms")
	// sends at once.
	Linger time.Duration
	// BatchMaxBytes caps a record batch (before compression). Default 0:
	// each topic's max.message.bytes as the broker reports it, or 1000012
	// when it cannot be read. A smaller explicit value wins; a single event
	// larger than the cap is a permanent error.
	BatchMaxBytes int32
	// MaxInFlight is how many events may be handed to Kafka and not yet
	// acknowledged; Publish blocks while it is reached. Default 4096: with
	// the window (2048 events by default) it bounds memory; raise both for brokers far away.
	MaxInFlight int
	// ConnectTimeout bounds the startup checks (reaching a broker,
	// authenticating, finding the topic) and each admin request. Default
	// 10s.
	ConnectTimeout time.Duration
	// Retry paces retries while brokers are unreachable. Default initial
	// 100ms, max 2s, multiplier 2.
	Retry retry.Backoff

	// TLS configures encryption; off by default.
	TLS TLSConfig
	// SASL configures authentication; off by default.
	SASL SASLConfig
}

// TLSConfig is the TLS section shared by every broker sink.
type TLSConfig = tlsconf.Config

// SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASLConfig configures SASL authentication. Its String method hides the
// password, so printing a Config does not leak it.
type SASLConfig struct {
	// Mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512". Default
	// none: no authentication.
	Mechanism string
	// Username and Password are the credentials; required with Mechanism.
	Username string
	Password string
}

// String describes c without the password.
func (c SASLConfig) String() string {
	if c.Mechanism == "" {
		return "{}"
	}
	return fmt.Sprintf("{Mechanism:%s Username:%s Password:[redacted]}", c.Mechanism, c.Username)
}

// GoString is String, for %#v.
func (c SASLConfig) GoString() string { return c.String() }

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.ContentMode == "" {
		c.ContentMode = ModeBinary
	}
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	switch {
	case c.Linger == 0:
		c.Linger = DefaultLinger
	case c.Linger < 0:
		c.Linger = 0
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Retry.Max == 0 {
		c.Retry.Max = DefaultRetryMax
	}
	c.SASL.Mechanism = strings.ToUpper(c.SASL.Mechanism)
	return c
}

// Validate checks the configuration without touching the network.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if len(c.Brokers) == 0 {
		add("brokers: at least one host:port is required")
	}
	for _, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			add("brokers: %q is not host:port", b)
		}
	}
	if _, err := sink.ParseTemplate(c.Topic); err != nil {
		add("topic: %v", err)
	} else if !strings.Contains(c.Topic, "{{") {
		if err := validTopicName(c.Topic); err != nil {
			add("topic: %v", err)
		}
	}
	switch c.ContentMode {
	case ModeBinary, ModeStructured:
	default:
		add("content_mode: %q is neither %q nor %q", c.ContentMode, ModeBinary, ModeStructured)
	}
	if _, err := codec(c.Compression); err != nil {
		add("compression: %v", err)
	}
	if !c.CreateTopics {
		if c.Partitions != 0 || c.ReplicationFactor != 0 || len(c.TopicConfig) > 0 {
			add("partitions, replication_factor and topic_config apply to created topics: set create_topics: true or remove them")
		}
	}
	if c.Partitions < -1 {
		add("partitions: %d is negative; use 0 for the broker default", c.Partitions)
	}
	if c.ReplicationFactor < -1 {
		add("replication_factor: %d is negative; use 0 for the broker default", c.ReplicationFactor)
	}
	if c.BatchMaxBytes != 0 && (c.BatchMaxBytes < minBatchMaxBytes || c.BatchMaxBytes > maxBatchMaxBytes) {
		add("batch_max_bytes: %d is outside [%d, %d]", c.BatchMaxBytes, minBatchMaxBytes, maxBatchMaxBytes)
	}
	if c.MaxInFlight < 0 {
		add("max_in_flight: %d is negative", c.MaxInFlight)
	}
	if c.ConnectTimeout < 0 {
		add("connect_timeout must not be negative")
	}
	if err := c.TLS.Validate(); err != nil {
		add("%s", err)
	}
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.Username != "" || c.SASL.Password != "" {
			add("sasl: username/password given without a mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASL.Username == "" || c.SASL.Password == "" {
			add("sasl: %s needs username and password", c.SASL.Mechanism)
		}
	default:
		add("sasl: mechanism %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASL.Mechanism)
	}
	return errors.Join(errs...)
}

// validTopicName applies Kafka's topic name rules, so an invalid name fails
// here instead of at the broker.
func validTopicName(name string) error {
	if name == "" {
		return errors.New("empty topic name")
	}
	if name == "." || name == ".." {
		return fmt.Errorf("topic name %q is not allowed", name)
	}
	if len(name) > 249 {
		return fmt.Errorf("topic name %q is longer than 249 characters", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			continue
		}
		return fmt.Errorf("topic name %q has %q; Kafka allows only ASCII letters, digits, '.', '_' and '-'", name, c)
	}
	return nil
}
