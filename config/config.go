// Package config is outbox-cdc's one configuration schema: every key of the
// YAML file, its default, its checks, and the conversion into the plain
// configurations of the packages that do the work (replication, decoder,
// checkpoint, observe, retention and the sinks), which know nothing of YAML.
//
// Load reads the file, lays the environment over it, decodes the result once
// (unknown keys, wrong types and bad enumeration values are refused with the
// key path and the line), applies the defaults once, validates every key and
// reports every problem at once, each as a *KeyError.
//
// Every key can be overridden by an environment variable named after its path:
// OUTBOX_CDC_ plus the keys in upper case joined by underscores, list items by
// index. postgres.url is OUTBOX_CDC_POSTGRES_URL; sinks[0].path is
// OUTBOX_CDC_SINKS_0_PATH; sinks[1].kafka.brokers is
// OUTBOX_CDC_SINKS_1_KAFKA_BROKERS (lists are comma-separated). An index one
// past the end of a list adds an entry; an index further out is an error.
// OUTBOX_CDC_CONFIG and the test harness's OUTBOX_CDC_TEST_ variables are no
// overrides and are ignored.
package config

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/observe"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
	"github.com/outbox-cdc/outbox-cdc/internal/retention"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "OUTBOX_CDC"

// Config is the whole configuration. After Load every default is filled in:
// the values are the ones outbox-cdc runs with.
type Config struct {
	Postgres   Postgres   `yaml:"postgres"`
	Outbox     Outbox     `yaml:"outbox"`
	Window     Window     `yaml:"window"`
	Sinks      []Sink     `yaml:"sinks"`
	DeadLetter DeadLetter `yaml:"dead_letter"`
	HTTP       HTTP       `yaml:"http"`
	Admin      Admin      `yaml:"admin"`
	Heartbeat  Heartbeat  `yaml:"heartbeat"`
	Log        Log        `yaml:"log"`
}

// DeadLetter is where events set aside by the dead-letter policy go.
type DeadLetter struct {
	// Table is the schema-qualified dead-letter table, created by setup in
	// the outbox's database. Default public.outbox_dead_letter; an
	// unqualified name means schema public.
	Table string `yaml:"table"`
}

// Heartbeat keeps the slot moving on an idle outbox: a transactional
// pg_logical_emit_message with the heartbeat prefix, written by outbox-cdc in
// the slot's database and never published.
type Heartbeat struct {
	// Interval between heartbeats. Default 10s; must be positive.
	Interval time.Duration `yaml:"interval"`
	// Disabled turns heartbeats off, for read-only setups. Default false.
	Disabled bool `yaml:"disabled"`
}

// DefaultHeartbeatInterval is Heartbeat.Interval's default.
const DefaultHeartbeatInterval = 10 * time.Second

// Postgres is the source database.
type Postgres struct {
	// URL is the connection string (URL or key=value). Required. Its
	// password is never logged.
	URL string `yaml:"url"`
	// Slot is the replication slot. Default "outbox_cdc".
	Slot string `yaml:"slot"`
	// Publication is the publication. Default "outbox_cdc".
	Publication string `yaml:"publication"`
	// StatusInterval is how often the acknowledged position is confirmed to
	// the server. Default 500ms; must be positive.
	StatusInterval time.Duration `yaml:"status_interval"`
	// ConnectTimeout bounds each connection attempt. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// DrainTimeout bounds the wait for in-flight events at shutdown. Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// StandbyPoll is how often a standby instance checks the slot. Default 1s.
	StandbyPoll time.Duration `yaml:"standby_poll"`
	// Retry is the backoff between reconnects. Default 500ms doubling to
	// 10s, full jitter. Formerly "reconnect" (still read, with a warning).
	Retry Backoff `yaml:"retry" old:"reconnect"`
	// Roles are the roles setup grants privileges to, for the
	// least-privilege layout of docs/security.md. Default none: the role of
	// postgres.url runs setup and run alike.
	Roles Roles `yaml:"roles"`
	// PublicationCheck is the longest time between two checks that every
	// outbox table is still in the publication as setup left it (by OID).
	// Checks also run at start, on every Relation message and whenever the
	// slot could be confirmed past the last verified position. Default 5s.
	PublicationCheck time.Duration `yaml:"publication_check"`
	// DDLGuard is what setup does about the DDL guard, an event trigger that
	// refuses to rename or drop an outbox table or take it out of the
	// publication while the slot exists: "auto" (default: install it when the
	// role is a superuser, which CREATE EVENT TRIGGER needs), "on" (install
	// it or fail) or "off" (leave this slot's tables unguarded; outbox-cdc
	// still detects such a change and stops with a named error).
	DDLGuard DDLGuard `yaml:"ddl_guard"`
	// FailoverSlot is whether setup makes the replication slot a failover
	// slot, which a standby running with sync_replication_slots keeps a
	// copy of, so that outbox-cdc resumes from it after a promotion: "auto"
	// (default: on PostgreSQL 17 and newer, which have failover slots),
	// "on" (or fail on an older server) or "off". Setup changes an existing
	// slot when outbox-cdc is stopped. See docs/postgres-versions.md.
	FailoverSlot FailoverSlot `yaml:"failover_slot"`
}

// Roles name the roles of the least-privilege layout (docs/security.md);
// `setup` and `setup --print-sql` grant each exactly what it needs. The
// roles must exist.
type Roles struct {
	// Stream is the role `run` connects as, when it is not the role that
	// runs setup. It must have the REPLICATION attribute (setup gives it
	// when it can); setup grants it SELECT, INSERT and UPDATE on the
	// dead-letter and progress tables, SELECT and DELETE on the outbox
	// tables with outbox.retention (streaming needs none), and with
	// outbox.messages on, EXECUTE on pg_logical_emit_message for the
	// heartbeat. Default none.
	Stream string `yaml:"stream"`
	// Writers are the application roles that write events: setup grants
	// them INSERT on the outbox tables, SELECT on their id column and
	// EXECUTE on their <table>_publish helpers, and with outbox.messages on,
	// EXECUTE on pg_logical_emit_message. Default none.
	Writers []string `yaml:"writers"`
}

// Backoff is an exponential backoff with full jitter, the one shape of every
// retry setting (postgres.retry, sinks[].retry and the brokers' retry).
// Zero fields take the default of the key they sit under.
type Backoff struct {
	// Initial caps the first delay. Must be positive.
	Initial time.Duration `yaml:"initial"`
	// Max caps every delay. Must be positive.
	Max time.Duration `yaml:"max"`
	// Multiplier grows the cap per attempt. Must be at least 1.
	Multiplier float64 `yaml:"multiplier"`
}

func (b Backoff) retry() retry.Backoff {
	return retry.Backoff{Initial: b.Initial, Max: b.Max, Multiplier: b.Multiplier}
}

// Table is one outbox table.
type Table struct {
	// Name is the schema-qualified table name. Default "public.outbox"; an
	// unqualified name means schema public.
	Name string `yaml:"name"`
	// Columns maps the table's columns; empty fields take the defaults.
	Columns Columns `yaml:"columns"`
	// DefaultSource is the CloudEvents source for rows whose source column is
	// NULL or missing. Default outbox.default_source.
	DefaultSource string `yaml:"default_source"`
}

// Columns maps outbox columns onto event fields. An empty field takes the
// default column name shown; "-" means the table has no such column.
type Columns struct {
	ID              string `yaml:"id"`              // default "id"; required
	Type            string `yaml:"type"`            // default "type"; required
	Source          string `yaml:"source"`          // default "source"
	Subject         string `yaml:"subject"`         // default "subject"
	AggregateType   string `yaml:"aggregate_type"`  // default "aggregate_type"
	AggregateID     string `yaml:"aggregate_id"`    // default "aggregate_id"
	Data            string `yaml:"data"`            // default "data"
	DataContentType string `yaml:"datacontenttype"` // default "datacontenttype"
	DataSchema      string `yaml:"dataschema"`      // default "dataschema"
	Headers         string `yaml:"headers"`         // default "headers"
	Time            string `yaml:"time"`            // default "created_at"
}

// Outbox describes where events come from.
type Outbox struct {
	// Tables are the outbox tables. Default one table, public.outbox, with
	// the default column names.
	Tables []Table `yaml:"tables"`
	// Messages configures events written with pg_logical_emit_message
	// instead of an outbox row. Off by default (see docs/security.md).
	Messages Messages `yaml:"messages"`
	// MessagePrefix is replaced by messages.prefix and messages.enabled: "-"
	// is accepted with a warning (messages are off by default now), any
	// other value is an error that says what to write instead.
	MessagePrefix string `yaml:"message_prefix"`
	// HeartbeatPrefix marks heartbeat messages. Default "outbox-cdc.heartbeat".
	HeartbeatPrefix string `yaml:"heartbeat_prefix"`
	// DefaultSource is the CloudEvents source for rows and messages without
	// one. Default none.
	DefaultSource string `yaml:"default_source"`
	// Retention prunes outbox rows every sink acknowledged. Off by default.
	Retention Retention `yaml:"retention"`
	// OnInvalid is what happens to a row that cannot become a CloudEvent:
	// "block" (default: the stream stops at it with an error naming table,
	// row, LSN and column; the slot does not pass it) or "dead-letter" (the
	// raw row is stored in the dead-letter table and the stream goes on).
	OnInvalid sink.Policy `yaml:"on_invalid"`
}

// Messages configures message events: CloudEvents written as
// pg_logical_emit_message(true, <prefix>, <JSON>) instead of an outbox row.
type Messages struct {
	// Enabled turns message events on. Default false: such messages are
	// ignored (the first one is logged), because by default every role that
	// can log in may call pg_logical_emit_message, and so could publish
	// events or stop the stream. With it on, setup revokes EXECUTE on
	// pg_logical_emit_message from PUBLIC and grants it to postgres.roles
	// and to its own role; run warns while PUBLIC can still execute it.
	// Non-transactional messages (pg_logical_emit_message(false, ...)) with
	// the prefix follow outbox.on_invalid.
	Enabled bool `yaml:"enabled"`
	// Prefix is the message prefix of events. Default "outbox".
	Prefix string `yaml:"prefix"`
}

// Retention prunes acknowledged outbox rows. The zero Age turns it off.
type Retention struct {
	// Age: rows whose transaction committed longer ago (and that every sink
	// acknowledged) are deleted. Default 0: never. Must not be negative.
	Age time.Duration `yaml:"age"`
	// Interval between pruning rounds. Default 1m.
	Interval time.Duration `yaml:"interval"`
	// Batch is the most rows one DELETE removes. Default 1000.
	Batch int `yaml:"batch"`
}

// Window bounds the events in flight.
type Window struct {
	// MaxEvents defaults to 2048: enough to keep a broker 30 ms away busy at
	// 60,000 events/s; raise it for brokers farther away (memory grows by a
	// few KiB per event). Must be positive.
	MaxEvents int `yaml:"max_events"`
	// MaxBytes defaults to 4 MiB. Must be positive.
	MaxBytes int64 `yaml:"max_bytes"`
}

// HTTP configures the HTTP server and the health rules.
type HTTP struct {
	// Addr is the listen address, host:port. Default 127.0.0.1:9187
	// (loopback only); "-" disables the server (metrics are still kept).
	Addr string `yaml:"addr"`
	// SlotPoll is how often the slot's figures are read from the server.
	// Default 10s.
	SlotPoll time.Duration `yaml:"slot_poll"`
	// SinkTimeout: a sink with events pending and no acknowledgement for this
	// long makes /readyz fail. Default 30s.
	SinkTimeout time.Duration `yaml:"sink_timeout"`
	// MaxLag: /readyz fails while the oldest unacknowledged event committed
	// longer ago than this. Default 5m.
	MaxLag time.Duration `yaml:"max_lag"`
	// MaxLagBytes: /readyz fails while the slot's confirmed position trails
	// the server's WAL by more than this. Default 1 GiB.
	MaxLagBytes int64 `yaml:"max_lag_bytes"`
	// Stall: /healthz fails when the replication loop has not turned for this
	// long. Default 2m.
	Stall time.Duration `yaml:"stall"`
	// Linger keeps /metrics, /readyz and /status up this long after the
	// stream stopped for good (a row under outbox.on_invalid: block, an
	// outbox table that left the publication), so that a scrape sees why
	// before the process exits non-zero; SIGTERM ends it early. Default 0:
	// exit at once. Must not be negative.
	Linger time.Duration `yaml:"linger"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level LogLevel `yaml:"level"`
	// Format is text or json. Default text.
	Format LogFormat `yaml:"format"`
}

// Load reads the YAML file at path (none when path is empty), lays the
// environment (environ, as os.Environ returns it) over it, decodes it,
// applies the defaults and validates the result. The error joins one
// *KeyError per problem found, decoding and validation alike. warn receives
// non-fatal findings: environment variables that match no key and
// deprecated key names. Neither ever contains a value.
func Load(path string, environ []string, warn func(string)) (*Config, error) {
	if warn == nil {
		warn = func(string) {}
	}
	var src []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		src = b
	}
	d := newDecoder(path, warn)
	root, err := d.parse(src)
	if err != nil {
		return nil, err
	}
	d.overlayEnv(root, environ)
	cfg := &Config{}
	d.decode(root, cfg)
	cfg.migrate(d.problems, warn)
	cfg.setDefaults()
	cfg.validate(d.problems)
	if err := d.problems.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// replicationConfig returns the replication stream's configuration.
func (c *Config) replicationConfig() replication.Config {
	p := c.Postgres
	return replication.Config{
		URL: p.URL, Slot: p.Slot, Publication: p.Publication,
		StatusInterval: p.StatusInterval, StandbyPoll: p.StandbyPoll,
		DrainTimeout: p.DrainTimeout, ConnectTimeout: p.ConnectTimeout,
		Retry: p.Retry.retry(),
	}
}

// decoderConfig returns the decoder's configuration.
func (c *Config) decoderConfig() decoder.Config {
	tables := make([]decoder.Table, len(c.Outbox.Tables))
	for i, t := range c.Outbox.Tables {
		tables[i] = decoder.Table{Name: t.Name, DefaultSource: t.DefaultSource, Columns: decoder.Columns(t.Columns)}
	}
	return decoder.Config{
		Tables:          tables,
		MessagePrefix:   c.Outbox.Messages.Prefix,
		MessagesOff:     !c.Outbox.Messages.Enabled,
		HeartbeatPrefix: c.Outbox.HeartbeatPrefix,
		DefaultSource:   c.Outbox.DefaultSource,
	}
}

// checkpointConfig returns the window bounds.
func (c *Config) checkpointConfig() checkpoint.Config {
	return checkpoint.Config{MaxEvents: c.Window.MaxEvents, MaxBytes: c.Window.MaxBytes}
}

// observeConfig returns the HTTP server's configuration.
func (c *Config) observeConfig() observe.Config {
	h := c.HTTP
	return observe.Config{Addr: h.Addr, SlotPoll: h.SlotPoll, SinkTimeout: h.SinkTimeout, MaxLag: h.MaxLag, MaxLagBytes: h.MaxLagBytes, Stall: h.Stall, Linger: h.Linger}
}

// retentionConfig returns the outbox pruning configuration.
func (c *Config) retentionConfig() retention.Config {
	r := c.Outbox.Retention
	return retention.Config{Age: r.Age, Interval: r.Interval, Batch: r.Batch}
}

// UsesDeadLetter reports whether any policy stores dead letters.
func (c *Config) UsesDeadLetter() bool {
	if c.Outbox.OnInvalid == sink.PolicyDeadLetter {
		return true
	}
	for _, s := range c.Sinks {
		if s.Policy == sink.PolicyDeadLetter {
			return true
		}
	}
	return false
}

// TableNames returns the schema-qualified outbox tables.
func (c *Config) TableNames() []string {
	var out []string
	for _, t := range c.decoderConfig().WithDefaults().Tables {
		out = append(out, t.Name)
	}
	return out
}

// errNoURL is the message for a missing postgres.url.
var errNoURL = errors.New("is required (or set OUTBOX_CDC_POSTGRES_URL)")

// migrate handles keys that were replaced.
func (c *Config) migrate(p *problems, warn func(string)) {
	switch prefix := c.Outbox.MessagePrefix; prefix {
	case "":
	case "-":
		warn("outbox.message_prefix is gone: message events are off unless outbox.messages.enabled is true; remove the key")
		c.Outbox.MessagePrefix = ""
	default:
		p.add("outbox.message_prefix", "is replaced by outbox.messages: message events are now off unless enabled, because any role may call pg_logical_emit_message until setup revokes it from PUBLIC (docs/security.md). Write outbox: {messages: {enabled: true, prefix: %q}} and run `outbox-cdc setup` again", prefix)
		c.Outbox.MessagePrefix = ""
	}
}
