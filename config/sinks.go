package config

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/sink/file"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/kafka"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/nats"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/redis"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/tlsconf"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Sink is one destination. Type selects which of the type-specific keys
// apply: path and sync for file (and none for stdout); the kafka, nats or
// redis section for brokers. A section or key of another type is an error.
type Sink struct {
	// Name identifies the sink in logs, metrics and dead letters. Required,
	// unique.
	Name string `yaml:"name"`
	// Type is file, stdout, kafka, nats or redis. Required.
	Type SinkType `yaml:"type"`
	// Route selects the events this sink receives. Default all.
	Route Route `yaml:"route"`
	// MaxBatch caps the events per publish call. Default 1024.
	MaxBatch int `yaml:"max_batch"`
	// Policy for an event the sink can never deliver (too large, not
	// authorized, invalid destination): "block" (default: keep retrying it,
	// the slot holds and /readyz says why) or "dead-letter" (store it in the
	// dead-letter table and go on).
	Policy sink.Policy `yaml:"policy"`
	// Retry spaces the retries of a blocked event. Default 100ms doubling to
	// 30s, full jitter.
	Retry Backoff `yaml:"retry"`

	// Path is the file sink's file ("-" is standard output). Required for
	// type file; two file sinks may not share one.
	Path string `yaml:"path"`
	// Sync fsyncs each batch before acknowledging (file sink). Default false.
	Sync bool `yaml:"sync"`
	// Mode is the file sink's permission bits, in octal, for a file it
	// creates (the umask still applies). Default "0600": only outbox-cdc's
	// own user can read the events.
	Mode string `yaml:"mode"`

	// Kafka is the kafka sink's section.
	Kafka *Kafka `yaml:"kafka"`
	// NATS is the nats sink's section.
	NATS *NATS `yaml:"nats"`
	// Redis is the redis sink's section.
	Redis *Redis `yaml:"redis"`
}

// Route selects the events a sink receives; see sink.Route.
type Route struct {
	// Types are globs over the CloudEvents type ("order.*"). Default all.
	Types []string `yaml:"types"`
	// AggregateTypes are globs over the aggregate type. Default all.
	AggregateTypes []string `yaml:"aggregate_types"`
}

// Sink returns the fan-out's route.
func (r Route) Sink() sink.Route {
	return sink.Route{Types: r.Types, AggregateTypes: r.AggregateTypes}
}

// fileConfig returns the file sink configuration.
func (s Sink) fileConfig() file.Config {
	if s.Type == SinkStdout {
		return file.Config{Path: "-"}
	}
	mode, _ := parseMode(s.Mode) // checked by validate
	return file.Config{Path: s.Path, Sync: s.Sync, Mode: mode}
}

// parseMode parses octal permission bits; "" is 0 (the sink's default).
func parseMode(s string) (os.FileMode, error) {
	if s == "" {
		return 0, nil
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m == 0 || m > 0o777 {
		return 0, fmt.Errorf("%q: want octal permission bits such as 0600 or 0640", s)
	}
	return os.FileMode(m), nil
}

// TLS configures TLS to a broker; see tlsconf.Config.
type TLS struct {
	// Enabled turns TLS on with the system roots. Default false; setting
	// any other field turns TLS on too.
	Enabled bool `yaml:"enabled"`
	// CAFile holds the certificate authorities to verify the server with.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate and key; both or
	// neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

func (t TLS) conf() tlsconf.Config { return tlsconf.Config(t) }

// Kafka is a kafka sink's section; see kafka.Config for each key.
type Kafka struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// ClientID is sent to the brokers. Default "outbox-cdc".
	ClientID string `yaml:"client_id"`
	// Topic is a template over the event. Default "outbox.{{.AggregateType}}".
	Topic string `yaml:"topic"`
	// ContentMode is binary (default) or structured.
	ContentMode ContentMode `yaml:"content_mode"`
	// CreateTopics creates missing topics. Default false.
	CreateTopics bool `yaml:"create_topics"`
	// Partitions of created topics. Default 0: the broker's default.
	Partitions int32 `yaml:"partitions"`
	// ReplicationFactor of created topics. Default 0: the broker's default.
	ReplicationFactor int16 `yaml:"replication_factor"`
	// TopicConfig holds topic-level configs for created topics.
	TopicConfig map[string]string `yaml:"topic_config"`
	// Compression is none, gzip, snappy, lz4 (default) or zstd.
	Compression Compression `yaml:"compression"`
	// Linger before a partition's batch is sent. Default 2ms; a negative
	// value sends at once.
	Linger time.Duration `yaml:"linger"`
	// BatchMaxBytes caps a record batch. Default: the topic's
	// max.message.bytes.
	BatchMaxBytes int32 `yaml:"batch_max_bytes"`
	// MaxInFlight events handed to Kafka and not yet acknowledged. Default
	// 4096.
	MaxInFlight int `yaml:"max_in_flight"`
	// ConnectTimeout bounds the startup checks and admin requests. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Retry paces retries while brokers are unreachable. Default 100ms
	// doubling to 2s. Formerly "backoff" (still read, with a warning).
	Retry Backoff `yaml:"retry" old:"backoff"`
	// TLS configures encryption; off by default.
	TLS TLS `yaml:"tls"`
	// SASL configures authentication; off by default.
	SASL SASL `yaml:"sasl"`
}

// SASL configures Kafka SASL authentication. Its String method hides the
// password.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512. Default none.
	Mechanism SASLMechanism `yaml:"mechanism"`
	// Username and Password are the credentials; required with Mechanism.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// String describes s without the password.
func (s SASL) String() string { return s.conf().String() }

// GoString is String, for %#v.
func (s SASL) GoString() string { return s.String() }

func (s SASL) conf() kafka.SASLConfig {
	return kafka.SASLConfig{Mechanism: string(s.Mechanism), Username: s.Username, Password: s.Password}
}

// kafkaConfig returns the kafka sink's configuration (zero fields mean the
// kafka package's defaults); the zero Config when the sink has no kafka section.
func (s Sink) kafkaConfig() kafka.Config {
	k := s.Kafka
	if k == nil {
		return kafka.Config{}
	}
	return kafka.Config{
		Brokers: k.Brokers, ClientID: k.ClientID, Topic: k.Topic, ContentMode: string(k.ContentMode),
		CreateTopics: k.CreateTopics, Partitions: k.Partitions, ReplicationFactor: k.ReplicationFactor, TopicConfig: k.TopicConfig,
		Compression: string(k.Compression), Linger: k.Linger, BatchMaxBytes: k.BatchMaxBytes, MaxInFlight: k.MaxInFlight,
		ConnectTimeout: k.ConnectTimeout, Retry: k.Retry.retry(), TLS: k.TLS.conf(), SASL: k.SASL.conf(),
	}
}

// NATS is a nats sink's section; see nats.Config for each key.
type NATS struct {
	// URL is the server, or several separated by commas. Default
	// nats://127.0.0.1:4222. Its user info is never logged.
	URL string `yaml:"url"`
	// Subject is a template over the event. Default "outbox.{{.AggregateType}}".
	Subject string `yaml:"subject"`
	// ContentMode is structured (default: the released NATS binding's mode,
	// read by every CloudEvents SDK without configuration) or binary (ce-
	// headers, the binding's working draft).
	ContentMode ContentMode `yaml:"content_mode"`
	// Stream is the JetStream stream the subjects belong to.
	Stream NATSStream `yaml:"stream"`
	// RelaxedOrder turns off the expected-last-message-id chain. Default false.
	RelaxedOrder bool `yaml:"relaxed_order"`
	// MaxInFlight events published and not yet acknowledged. Default 4096.
	MaxInFlight int `yaml:"max_in_flight"`
	// AckTimeout before a publish counts as failed. Default 5s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// ConnectTimeout bounds connecting at startup. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ReconnectWait between reconnection attempts. Default 2s.
	ReconnectWait time.Duration `yaml:"reconnect_wait"`
	// Retry is the backoff between resend rounds. Default 100ms doubling to 30s.
	Retry Backoff `yaml:"retry"`
	// CredentialsFile, NKeySeedFile, User/Password and Token authenticate;
	// at most one. Never logged.
	CredentialsFile string `yaml:"credentials_file"`
	NKeySeedFile    string `yaml:"nkey_seed_file"`
	User            string `yaml:"user"`
	Password        string `yaml:"password"`
	Token           string `yaml:"token"`
	// TLS configures TLS to the server.
	TLS TLS `yaml:"tls"`
}

// NATSStream names the JetStream stream and how to create it.
type NATSStream struct {
	// Name of the stream. Required.
	Name string `yaml:"name"`
	// Create creates the stream when it is missing. Default false.
	Create bool `yaml:"create"`
	// Subjects of a created stream. Default from Subject.
	Subjects []string `yaml:"subjects"`
	// DuplicateWindow of a created stream. Default 2m.
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// Replicas of a created stream, 1 to 5. Default 1.
	Replicas int `yaml:"replicas"`
	// MaxAge of messages in a created stream. Default 0: no limit.
	MaxAge time.Duration `yaml:"max_age"`
	// Storage of a created stream: file (default) or memory.
	Storage Storage `yaml:"storage"`
}

// natsConfig returns the nats sink's configuration (zero fields mean the
// nats package's defaults); the zero Config when the sink has no nats section.
func (s Sink) natsConfig() nats.Config {
	n := s.NATS
	if n == nil {
		return nats.Config{}
	}
	st := n.Stream
	return nats.Config{
		URL: n.URL, Subject: n.Subject, ContentMode: string(n.ContentMode),
		Stream: nats.StreamConfig{Name: st.Name, Create: st.Create, Subjects: st.Subjects, DuplicateWindow: st.DuplicateWindow,
			Replicas: st.Replicas, MaxAge: st.MaxAge, Storage: string(st.Storage)},
		RelaxedOrder: n.RelaxedOrder, MaxInFlight: n.MaxInFlight, AckTimeout: n.AckTimeout,
		ConnectTimeout: n.ConnectTimeout, ReconnectWait: n.ReconnectWait, Retry: n.Retry.retry(),
		CredentialsFile: n.CredentialsFile, NKeySeedFile: n.NKeySeedFile, User: n.User, Password: n.Password, Token: n.Token,
		TLS: n.TLS.conf(),
	}
}

// Redis is a redis sink's section; see redis.Config for each key.
type Redis struct {
	// Address is host:port. Default 127.0.0.1:6379.
	Address string `yaml:"address"`
	// Username and Password authenticate. Never logged.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DB is the logical database. Default 0.
	DB int `yaml:"db"`
	// TLS configures TLS to the server.
	TLS TLS `yaml:"tls"`
	// Stream is a template over the event. Default "outbox:{{.AggregateType}}".
	Stream string `yaml:"stream"`
	// MaxLen trims streams to about this many entries. Default 0: no trimming.
	MaxLen int64 `yaml:"maxlen"`
	// NoMkStream refuses to create missing streams. Default false.
	NoMkStream bool `yaml:"nomkstream"`
	// ContentMode is binary (default) or structured.
	ContentMode ContentMode `yaml:"content_mode"`
	// Dedup is auto (default), entryid, guard, idmp or none.
	Dedup Dedup `yaml:"dedup"`
	// GuardTTL is how long a guard key lives in guard mode. Default 24h.
	GuardTTL time.Duration `yaml:"guard_ttl"`
	// ProducerID is the IDMP producer id. Default "outbox-cdc/" + the sink name.
	ProducerID string `yaml:"producer_id"`
	// BatchSize is the most events per round trip. Default 1024.
	BatchSize int `yaml:"batch_size"`
	// MaxInFlight events taken and not yet acknowledged. Default 4096.
	MaxInFlight int `yaml:"max_in_flight"`
	// ConnectTimeout bounds the startup check and every dial. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Timeout bounds each socket read and write. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Retry is the backoff after a transient failure. Default 100ms doubling
	// to 30s.
	Retry Backoff `yaml:"retry"`
}

// redisConfig returns the redis sink's configuration (zero fields mean the
// redis package's defaults); the zero Config when the sink has no redis section.
func (s Sink) redisConfig() redis.Config {
	r := s.Redis
	if r == nil {
		return redis.Config{}
	}
	return redis.Config{
		Address: r.Address, Username: r.Username, Password: r.Password, DB: r.DB, TLS: r.TLS.conf(),
		Stream: r.Stream, MaxLen: r.MaxLen, NoMkStream: r.NoMkStream, ContentMode: string(r.ContentMode),
		Dedup: string(r.Dedup), GuardTTL: r.GuardTTL, ProducerID: r.ProducerID, BatchSize: r.BatchSize,
		MaxInFlight: r.MaxInFlight, ConnectTimeout: r.ConnectTimeout, Timeout: r.Timeout, Retry: r.Retry.retry(),
	}
}

// sections lists the broker sections present on s, by type.
func (s Sink) sections() map[SinkType]bool {
	return map[SinkType]bool{SinkKafka: s.Kafka != nil, SinkNATS: s.NATS != nil, SinkRedis: s.Redis != nil}
}

// validateBroker runs the broker package's own checks on the section.
func (s Sink) validateBroker() error {
	switch s.Type {
	case SinkKafka:
		return s.kafkaConfig().Validate()
	case SinkNATS:
		return s.natsConfig().Validate()
	case SinkRedis:
		return s.redisConfig().Validate()
	}
	return fmt.Errorf("%s is not a broker", s.Type)
}
