// Package config loads outbox-cdc's YAML configuration, applies environment
// overrides and validates the result once, up front.
//
// Every key can be overridden by an environment variable named after its path:
// OUTBOX_CDC_ plus the keys in upper case joined by underscores, list items by
// index. postgres.url is OUTBOX_CDC_POSTGRES_URL; sinks[0].path is
// OUTBOX_CDC_SINKS_0_PATH; sinks[1].kafka.brokers is
// OUTBOX_CDC_SINKS_1_KAFKA_BROKERS (lists are comma-separated).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/outbox-cdc/outbox-cdc/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/decoder"
	"github.com/outbox-cdc/outbox-cdc/observe"
	"github.com/outbox-cdc/outbox-cdc/replication"
	"github.com/outbox-cdc/outbox-cdc/retention"
	"github.com/outbox-cdc/outbox-cdc/retry"
	"github.com/outbox-cdc/outbox-cdc/sink"
	"github.com/outbox-cdc/outbox-cdc/sink/file"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "OUTBOX_CDC"

// Config is the whole configuration.
type Config struct {
	Postgres   Postgres       `yaml:"postgres"`
	Outbox     Outbox         `yaml:"outbox"`
	Window     Window         `yaml:"window"`
	Sinks      []Sink         `yaml:"sinks"`
	DeadLetter DeadLetter     `yaml:"dead_letter"`
	HTTP       observe.Config `yaml:"http"`
	Heartbeat  Heartbeat      `yaml:"heartbeat"`
	Log        Log            `yaml:"log"`
}

// DeadLetter is where events set aside by the dead-letter policy go.
type DeadLetter struct {
	// Table is the schema-qualified dead-letter table, created by setup in
	// the outbox's database. Default public.outbox_dead_letter.
	Table string `yaml:"table"`
}

// Heartbeat keeps the slot moving on an idle outbox: a transactional
// pg_logical_emit_message with the heartbeat prefix, written by outbox-cdc in
// the slot's database and never published.
type Heartbeat struct {
	// Interval between heartbeats. Default 10s.
	Interval time.Duration `yaml:"interval"`
	// Disabled turns heartbeats off, for read-only setups. Default false.
	Disabled bool `yaml:"disabled"`
}

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
	// the server. Default 500ms.
	StatusInterval time.Duration `yaml:"status_interval"`
	// ConnectTimeout bounds each connection attempt. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// DrainTimeout bounds the wait for in-flight events at shutdown. Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// StandbyPoll is how often a standby instance checks the slot. Default 1s.
	StandbyPoll time.Duration `yaml:"standby_poll"`
	// Reconnect is the backoff between reconnects.
	Reconnect retry.Backoff `yaml:"reconnect"`
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
	DDLGuard string `yaml:"ddl_guard"`
}

// Outbox describes where events come from.
type Outbox struct {
	// Tables are the outbox tables. Default one table, public.outbox, with
	// the default column names.
	Tables []decoder.Table `yaml:"tables"`
	// MessagePrefix is the pg_logical_emit_message prefix of CloudEvent
	// messages. Default "outbox".
	MessagePrefix string `yaml:"message_prefix"`
	// HeartbeatPrefix marks heartbeat messages. Default "outbox-cdc.heartbeat".
	HeartbeatPrefix string `yaml:"heartbeat_prefix"`
	// DefaultSource is the CloudEvents source for rows and messages without
	// one. Default none.
	DefaultSource string `yaml:"default_source"`
	// Retention prunes outbox rows every sink acknowledged. Off by default.
	Retention retention.Config `yaml:"retention"`
	// OnInvalid is what happens to a row that cannot become a CloudEvent:
	// "block" (default: the stream stops at it with an error naming table,
	// row, LSN and column; the slot does not pass it) or "dead-letter" (the
	// raw row is stored in the dead-letter table and the stream goes on).
	OnInvalid string `yaml:"on_invalid"`
}

// Window bounds the events in flight.
type Window struct {
	// MaxEvents defaults to 2048: enough to keep a broker 30 ms away busy at
	// 60,000 events/s; raise it for brokers farther away (memory grows by a
	// few KiB per event).
	MaxEvents int `yaml:"max_events"`
	// MaxBytes defaults to 4 MiB.
	MaxBytes int64 `yaml:"max_bytes"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// Sink is one destination. Type selects which of the type-specific keys
// apply: path and sync for file and stdout; the kafka, nats or redis section
// for brokers.
type Sink struct {
	Name string `yaml:"name"`
	// Type is file, stdout, kafka, nats or redis.
	Type string `yaml:"type"`
	// Route selects the events this sink receives. Default all.
	Route sink.Route `yaml:"route"`
	// MaxBatch caps the events per publish call. Default 1024.
	MaxBatch int `yaml:"max_batch"`
	// Policy for an event the sink can never deliver (too large, not
	// authorized, invalid destination): "block" (default: keep retrying it,
	// the slot holds and /readyz says why) or "dead-letter" (store it in the
	// dead-letter table and go on).
	Policy string `yaml:"policy"`
	// Retry spaces the retries of a blocked event. Default 100ms doubling to
	// 30s, full jitter.
	Retry retry.Backoff `yaml:"retry"`

	// Path is the file sink's file ("-" is standard output).
	Path string `yaml:"path"`
	// Sync fsyncs each batch before acknowledging (file sink). Default false.
	Sync bool `yaml:"sync"`

	Brokers brokers `yaml:",inline"`
}

// File returns the file sink configuration.
func (s Sink) File() file.Config {
	if s.Type == "stdout" {
		return file.Config{Path: "-"}
	}
	return file.Config{Path: s.Path, Sync: s.Sync}
}

// Load reads the YAML file at path (none when path is empty), applies the
// environment (environ, as os.Environ returns it) and validates the result.
// warn receives non-fatal findings such as unknown environment variables.
func Load(path string, environ []string, warn func(string)) (*Config, error) {
	cfg := &Config{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config: %s: %s", path, cleanYAMLError(err))
		}
	}
	if err := applyEnv(cfg, environ, warn); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

var fieldNotFound = regexp.MustCompile(`field (\S+) not found in type \S+`)

func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n  ")
	return fieldNotFound.ReplaceAllString(s, "unknown config key $1")
}

func (c *Config) setDefaults() {
	if c.Postgres.Slot == "" {
		c.Postgres.Slot = "outbox_cdc"
	}
	if c.Postgres.Publication == "" {
		c.Postgres.Publication = "outbox_cdc"
	}
	if c.HTTP.Addr == "" {
		c.HTTP.Addr = observe.DefaultAddr
	}
	if c.DeadLetter.Table == "" {
		c.DeadLetter.Table = "public.outbox_dead_letter"
	} else if !strings.Contains(c.DeadLetter.Table, ".") {
		c.DeadLetter.Table = "public." + c.DeadLetter.Table
	}
	if c.Outbox.OnInvalid == "" {
		c.Outbox.OnInvalid = "block"
	}
	if c.Postgres.PublicationCheck <= 0 {
		c.Postgres.PublicationCheck = 5 * time.Second
	}
	if c.Postgres.DDLGuard == "" {
		c.Postgres.DDLGuard = "auto"
	}
	for i := range c.Sinks {
		if c.Sinks[i].Policy == "" {
			c.Sinks[i].Policy = "block"
		}
	}
	if c.Heartbeat.Interval <= 0 {
		c.Heartbeat.Interval = 10 * time.Second
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}

// Validate checks every key and says which one is wrong.
func (c *Config) Validate() error {
	if c.Postgres.URL == "" {
		return errors.New("config: postgres.url is required (or set OUTBOX_CDC_POSTGRES_URL)")
	}
	if err := c.Replication().Validate(); err != nil {
		return fmt.Errorf("config: postgres: %w", err)
	}
	if err := c.Decoder().Validate(); err != nil {
		return fmt.Errorf("config: outbox: %w", err)
	}
	if len(c.Sinks) == 0 {
		return errors.New("config: sinks: at least one sink is required")
	}
	names := map[string]bool{}
	for i, s := range c.Sinks {
		where := fmt.Sprintf("config: sinks[%d]", i)
		if s.Name == "" {
			return fmt.Errorf("%s.name is required", where)
		}
		if names[s.Name] {
			return fmt.Errorf("%s.name: %q is used twice", where, s.Name)
		}
		names[s.Name] = true
		if err := s.Route.Validate(); err != nil {
			return fmt.Errorf("%s.route: %w", where, err)
		}
		if s.Policy != "block" && s.Policy != "dead-letter" {
			return fmt.Errorf("%s.policy: %q: want block or dead-letter", where, s.Policy)
		}
		switch s.Type {
		case "file":
			if s.Path == "" {
				return fmt.Errorf("%s (%s): path is required for a file sink", where, s.Name)
			}
			fallthrough
		case "stdout":
			if err := s.File().Validate(); err != nil {
				return fmt.Errorf("%s (%s): %w", where, s.Name, err)
			}
		default:
			if err := s.Brokers.validate(s.Type); err != nil {
				return fmt.Errorf("%s (%s): %w", where, s.Name, err)
			}
		}
		if s.Type != "file" && (s.Path != "" || s.Sync) {
			return fmt.Errorf("%s (%s): path and sync apply only to file sinks", where, s.Name)
		}
	}
	switch c.Postgres.DDLGuard {
	case "auto", "on", "off":
	default:
		return fmt.Errorf("config: postgres.ddl_guard: %q: want auto, on or off", c.Postgres.DDLGuard)
	}
	if c.Outbox.OnInvalid != "block" && c.Outbox.OnInvalid != "dead-letter" {
		return fmt.Errorf("config: outbox.on_invalid: %q: want block or dead-letter", c.Outbox.OnInvalid)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log.level %q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("config: log.format %q: want text or json", c.Log.Format)
	}
	return nil
}

// Replication returns the replication stream's configuration.
func (c *Config) Replication() replication.Config {
	p := c.Postgres
	return replication.Config{
		URL: p.URL, Slot: p.Slot, Publication: p.Publication,
		StatusInterval: p.StatusInterval, StandbyPoll: p.StandbyPoll,
		DrainTimeout: p.DrainTimeout, ConnectTimeout: p.ConnectTimeout,
		Reconnect: p.Reconnect,
	}
}

// Decoder returns the decoder's configuration.
func (c *Config) Decoder() decoder.Config {
	return decoder.Config{
		Tables:          c.Outbox.Tables,
		MessagePrefix:   c.Outbox.MessagePrefix,
		HeartbeatPrefix: c.Outbox.HeartbeatPrefix,
		DefaultSource:   c.Outbox.DefaultSource,
	}
}

// Checkpoint returns the window bounds.
func (c *Config) Checkpoint() checkpoint.Config {
	return checkpoint.Config{MaxEvents: c.Window.MaxEvents, MaxBytes: c.Window.MaxBytes}
}

// UsesDeadLetter reports whether any policy stores dead letters.
func (c *Config) UsesDeadLetter() bool {
	if c.Outbox.OnInvalid == "dead-letter" {
		return true
	}
	for _, s := range c.Sinks {
		if s.Policy == "dead-letter" {
			return true
		}
	}
	return false
}

// TableNames returns the schema-qualified outbox tables.
func (c *Config) TableNames() []string {
	var out []string
	for _, t := range c.Decoder().WithDefaults().Tables {
		out = append(out, t.Name)
	}
	return out
}
