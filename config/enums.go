package config

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/outbox-cdc/outbox-cdc/internal/sink/kafka"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/redis"
)

// The enumerations of the configuration. Each refuses an unknown value while
// the YAML (or an environment variable) is decoded, so the error names the
// key and the line; the empty string means the documented default.

// oneOf checks v against the allowed values and says which they are.
func oneOf(what, v string, allowed ...string) error {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%q is not a %s (want %s)", v, what, orList(allowed))
}

func orList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// SinkType selects a sink's implementation: file, stdout, kafka, nats or redis.
type SinkType string

// Sink types.
const (
	SinkFile   SinkType = "file"
	SinkStdout SinkType = "stdout"
	SinkKafka  SinkType = "kafka"
	SinkNATS   SinkType = "nats"
	SinkRedis  SinkType = "redis"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *SinkType) UnmarshalText(b []byte) error {
	if err := oneOf("sink type", string(b), "file", "stdout", "kafka", "nats", "redis"); err != nil {
		return err
	}
	*t = SinkType(b)
	return nil
}

// DDLGuard is what setup does about the DDL guard: auto (default), on or
// off; see Postgres.DDLGuard.
type DDLGuard string

// DDL guard modes.
const (
	DDLGuardAuto DDLGuard = "auto"
	DDLGuardOn   DDLGuard = "on"
	DDLGuardOff  DDLGuard = "off"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (g *DDLGuard) UnmarshalText(b []byte) error {
	if err := oneOf("ddl_guard mode", string(b), "auto", "on", "off"); err != nil {
		return err
	}
	*g = DDLGuard(b)
	return nil
}

// FailoverSlot is whether setup makes the replication slot a failover
// slot: auto (default), on or off; see Postgres.FailoverSlot.
type FailoverSlot string

// Failover slot modes.
const (
	FailoverSlotAuto FailoverSlot = "auto"
	FailoverSlotOn   FailoverSlot = "on"
	FailoverSlotOff  FailoverSlot = "off"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *FailoverSlot) UnmarshalText(b []byte) error {
	if err := oneOf("failover_slot mode", string(b), "auto", "on", "off"); err != nil {
		return err
	}
	*f = FailoverSlot(b)
	return nil
}

// LogLevel is debug, info, warn or error. Default info.
type LogLevel string

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LogLevel) UnmarshalText(b []byte) error {
	if err := oneOf("log level", string(b), "debug", "info", "warn", "error"); err != nil {
		return err
	}
	*l = LogLevel(b)
	return nil
}

// Slog returns the slog level; an empty LogLevel is info.
func (l LogLevel) Slog() slog.Level {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l))
	return level
}

// LogFormat is text or json. Default text.
type LogFormat string

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *LogFormat) UnmarshalText(b []byte) error {
	if err := oneOf("log format", string(b), "text", "json"); err != nil {
		return err
	}
	*f = LogFormat(b)
	return nil
}

// ContentMode is the CloudEvents content mode of a broker sink: binary
// (attributes as headers or fields, data as the payload) or structured (the
// whole event as CloudEvents JSON). Default binary.
type ContentMode string

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *ContentMode) UnmarshalText(b []byte) error {
	// The three sinks spell the same two modes alike.
	if err := oneOf("content mode", string(b), kafka.ModeBinary, kafka.ModeStructured); err != nil {
		return err
	}
	*m = ContentMode(b)
	return nil
}

// Dedup is how the Redis sink keeps a resent event out of the stream: auto,
// entryid, guard, idmp or none (see the redis package). Default auto.
type Dedup string

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Dedup) UnmarshalText(b []byte) error {
	if err := oneOf("dedup mode", string(b), redis.DedupAuto, redis.DedupEntryID, redis.DedupGuard, redis.DedupIDMP, redis.DedupNone); err != nil {
		return err
	}
	*d = Dedup(b)
	return nil
}

// Compression is the Kafka record batch codec: none, gzip, snappy, lz4 or
// zstd. Default lz4.
type Compression string

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Compression) UnmarshalText(b []byte) error {
	if err := oneOf("compression codec", string(b), "none", "gzip", "snappy", "lz4", "zstd"); err != nil {
		return err
	}
	*c = Compression(b)
	return nil
}

// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, in any case.
// Default none.
type SASLMechanism string

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *SASLMechanism) UnmarshalText(b []byte) error {
	v := strings.ToUpper(string(b))
	if err := oneOf("SASL mechanism", v, kafka.SASLPlain, kafka.SASLScramSHA256, kafka.SASLScramSHA512); err != nil {
		return fmt.Errorf("%q is not a SASL mechanism (want %s)", b, orList([]string{kafka.SASLPlain, kafka.SASLScramSHA256, kafka.SASLScramSHA512}))
	}
	*m = SASLMechanism(v)
	return nil
}

// Storage is where a created JetStream stream keeps messages: file or
// memory. Default file.
type Storage string

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Storage) UnmarshalText(b []byte) error {
	if err := oneOf("storage", string(b), "file", "memory"); err != nil {
		return err
	}
	*s = Storage(b)
	return nil
}
