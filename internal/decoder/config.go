package decoder

import (
	"errors"
	"fmt"
	"strings"
)

// Defaults.
const (
	DefaultTable           = "public.outbox"
	DefaultMessagePrefix   = "outbox"
	DefaultHeartbeatPrefix = "outbox-cdc.heartbeat"
	// DDLMessagePrefix marks the message the DDL guard writes when a change
	// to an outbox table is let through on purpose (schema.DDLMessagePrefix);
	// never published.
	DDLMessagePrefix = "outbox-cdc.ddl"
)

// Columns maps outbox columns onto event fields. An empty field takes the
// default column name shown; "-" means the table has no such column.
type Columns struct {
	ID              string // default "id"; required
	Type            string // default "type"; required
	Source          string // default "source"
	Subject         string // default "subject"
	AggregateType   string // default "aggregate_type"
	AggregateID     string // default "aggregate_id"
	Data            string // default "data"
	DataContentType string // default "datacontenttype"
	DataSchema      string // default "dataschema"
	Headers         string // default "headers"
	Time            string // default "created_at"
}

// Table is one outbox table.
type Table struct {
	// Name is the schema-qualified table name. Default "public.outbox"; an
	// unqualified name means schema public.
	Name string
	// Columns maps the table's columns; zero fields take the defaults.
	Columns Columns
	// DefaultSource is the CloudEvents source for rows whose source column is
	// NULL or missing. Default none: such a row is an error.
	DefaultSource string
}

// Config configures a Decoder.
type Config struct {
	// Tables lists the outbox tables. Default one table, public.outbox.
	Tables []Table
	// MessagePrefix is the logical decoding message prefix whose
	// transactional messages carry a CloudEvent as JSON. Default "outbox";
	// "-" disables message events. A non-transactional message with the
	// prefix is an *Error wrapping ErrNonTransactional: it is written even
	// when its transaction rolls back, so it cannot be an outbox event.
	MessagePrefix string
	// MessagesOff ignores messages with MessagePrefix instead of decoding
	// them; the first one is logged. Default false here; the YAML
	// configuration sets it unless outbox.messages.enabled is true, because
	// any role may call pg_logical_emit_message unless setup revoked it.
	MessagesOff bool
	// HeartbeatPrefix marks heartbeat messages, which are never published.
	// Default "outbox-cdc.heartbeat".
	HeartbeatPrefix string
	// DefaultSource is the source for message events without one and for
	// tables without their own DefaultSource.
	DefaultSource string
	// ServerEncoding is the database's server_encoding (SHOW
	// server_encoding), which the stream's text is converted from: see
	// SupportedEncodings. Default "": unknown, and text is then only
	// accepted when it is UTF-8 (as under SQL_ASCII), so nothing in another
	// encoding passes unconverted. `run` sets it from the server.
	ServerEncoding string
}

// WithDefaults returns c with every empty field set to its default column
// name.
func (c Columns) WithDefaults() Columns {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&c.ID, "id")
	def(&c.Type, "type")
	def(&c.Source, "source")
	def(&c.Subject, "subject")
	def(&c.AggregateType, "aggregate_type")
	def(&c.AggregateID, "aggregate_id")
	def(&c.Data, "data")
	def(&c.DataContentType, "datacontenttype")
	def(&c.DataSchema, "dataschema")
	def(&c.Headers, "headers")
	def(&c.Time, "created_at")
	return c
}

// WithDefaults returns c with every empty field set to its default.
func (c Config) WithDefaults() Config {
	if len(c.Tables) == 0 {
		c.Tables = []Table{{}}
	}
	tables := make([]Table, len(c.Tables))
	for i, t := range c.Tables {
		if t.Name == "" {
			t.Name = DefaultTable
		}
		if !strings.Contains(t.Name, ".") {
			t.Name = "public." + t.Name
		}
		if t.DefaultSource == "" {
			t.DefaultSource = c.DefaultSource
		}
		t.Columns = t.Columns.WithDefaults()
		tables[i] = t
	}
	c.Tables = tables
	if c.MessagePrefix == "" {
		c.MessagePrefix = DefaultMessagePrefix
	}
	if c.HeartbeatPrefix == "" {
		c.HeartbeatPrefix = DefaultHeartbeatPrefix
	}
	return c
}

// Validate checks c after defaults and returns every problem, joined.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	seen := map[string]bool{}
	for _, t := range c.Tables {
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("outbox table %s is listed twice", t.Name))
		}
		seen[t.Name] = true
		if t.Columns.ID == "-" || t.Columns.Type == "-" {
			errs = append(errs, fmt.Errorf("outbox table %s: the id and type columns are required", t.Name))
		}
		if strings.Count(t.Name, ".") != 1 {
			errs = append(errs, fmt.Errorf("outbox table %q: want schema.table", t.Name))
		}
	}
	if c.MessagePrefix == c.HeartbeatPrefix {
		errs = append(errs, errors.New("messages.prefix and heartbeat_prefix must differ"))
	}
	return errors.Join(errs...)
}
