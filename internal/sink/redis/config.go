package redis

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
	DefaultAddress        = "127.0.0.1:6379"
	DefaultStream         = "outbox:{{.AggregateType}}"
	DefaultGuardTTL       = 24 * time.Hour
	DefaultBatchSize      = 1024
	DefaultMaxInFlight    = 4096
	DefaultConnectTimeout = 10 * time.Second
	DefaultTimeout        = 10 * time.Second
)

// Content modes: the layouts of a stream entry (see the package
// documentation).
const (
	ContentBinary     = "binary"
	ContentStructured = "structured"
)

// Dedup modes: how a resent event is kept out of the stream (see the package
// documentation).
const (
	DedupAuto    = "auto"
	DedupEntryID = "entryid"
	DedupGuard   = "guard"
	DedupIDMP    = "idmp"
	DedupNone    = "none"
)

// Config configures a Redis Streams sink. The zero value, after defaults,
// writes to a Redis on 127.0.0.1:6379, database 0, without authentication.
type Config struct {
	// Address is host:port of the Redis server. Default "127.0.0.1:6379".
	// Redis Cluster and Sentinel are not supported by this version.
	Address string
	// Username is the ACL user; empty means "default". Never logged.
	Username string
	// Password authenticates Username (or the default user with
	// requirepass). Default none. Never logged and never part of an error.
	Password string
	// DB is the logical database number selected after connecting. Default 0.
	DB int
	// TLS configures TLS to the server; off by default.
	TLS TLSConfig

	// Stream names the stream each event is added to, as a template over the
	// event ([sink.ParseTemplate]). Default "outbox:{{.AggregateType}}".
	Stream string
	// MaxLen, when positive, trims every stream to about MaxLen entries with
	// XADD's "MAXLEN ~ MaxLen". Default 0: no trimming.
	MaxLen int64
	// NoMkStream makes XADD fail instead of creating a missing stream
	// (NOMKSTREAM): a missing stream is then a permanent error, and a static
	// stream name is checked at startup. Default false: streams are created.
	NoMkStream bool
	// ContentMode is "binary" (default: one entry field per CloudEvents
	// attribute plus "data") or "structured" (one field "event" holding the
	// CloudEvents JSON format).
	ContentMode string

	// Dedup chooses how resent events are kept out of the stream (every mode
	// keys an event on its source and id):
	//   - "auto" (default): "idmp" on Redis 8.6 or newer when the server keeps
	//     at least MaxInFlight idempotent ids per producer, else "entryid".
	//   - "entryid": each entry's id is "<commit LSN>-<seq>" (XADD with an
	//     explicit id), so Redis itself refuses a resent event. Costs nothing
	//     extra; needs one writer per stream. See the package documentation.
	//   - "guard": a guard key per event, holding its commit LSN, set with the
	//     XADD by a Lua script; entry ids stay time-based, and an event from
	//     another commit under a stored identity is logged and counted. Several
	//     times the Redis CPU of a plain XADD and about 190 bytes of memory per
	//     event for GuardTTL.
	//   - "idmp": XADD IDMP (Redis 8.6+); fails at startup on older servers.
	//   - "none": plain XADD; a resend after a lost reply or a restart of
	//     outbox-cdc may add an event twice.
	Dedup string
	// GuardTTL is how long a guard key outlives its XADD, in "guard" mode.
	// A resend later than GuardTTL is not recognised, so it must exceed the
	// longest time outbox-cdc may be down and then replay events it had
	// already added (a crash, a host move, an overnight outage): hence a
	// day. Redis holds about 160 bytes per event for GuardTTL (14 GB at 1,000
	// events/s): shorten it, or use "entryid", for high rates. Default 24h.
	GuardTTL time.Duration
	// ProducerID is the IDMP producer id in "idmp" mode. It must stay the
	// same across restarts and differ between sinks that write to the same
	// stream. Default "outbox-cdc/" + the sink name.
	ProducerID string

	// BatchSize is the most events sent in one round trip: one MULTI/EXEC
	// transaction, or one run of the guard script. Redis serves no other
	// client while it executes one (about 5 µs per event for XADD, 15 µs
	// with the guard script, on a small machine): lower it if other clients
	// of the same Redis need lower latency. Default 1024.
	BatchSize int
	// MaxInFlight is the most events taken by Publish and not yet
	// acknowledged; Publish blocks beyond it. Default 4096: four batches
	// pipelined, enough to keep Redis busy on loopback and across a
	// network; each slot costs memory while in use.
	MaxInFlight int
	// ConnectTimeout bounds the connection check at startup and every dial.
	// Default 10s.
	ConnectTimeout time.Duration
	// Timeout bounds each socket read and write of a round trip; a round
	// trip that exceeds it is retried. Default 10s.
	Timeout time.Duration
	// Retry is the backoff between attempts after a transient failure.
	// Default 100ms doubling to 30s, with jitter.
	Retry retry.Backoff
}

// TLSConfig is the TLS section shared by every broker sink.
type TLSConfig = tlsconf.Config

// WithDefaults returns c with zero fields replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.ContentMode == "" {
		c.ContentMode = ContentBinary
	}
	if c.Dedup == "" {
		c.Dedup = DedupAuto
	}
	if c.GuardTTL == 0 {
		c.GuardTTL = DefaultGuardTTL
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate checks the configuration with defaults applied. It does not touch
// the network.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		errs = append(errs, fmt.Errorf("address %q: want host:port", c.Address))
	}
	if c.DB < 0 {
		errs = append(errs, fmt.Errorf("db %d: must not be negative", c.DB))
	}
	if _, err := sink.ParseTemplate(c.Stream); err != nil {
		errs = append(errs, fmt.Errorf("stream: %w", err))
	}
	if c.MaxLen < 0 {
		errs = append(errs, fmt.Errorf("maxlen %d: must not be negative", c.MaxLen))
	}
	switch c.ContentMode {
	case ContentBinary, ContentStructured:
	default:
		errs = append(errs, fmt.Errorf("content_mode %q: want %q or %q", c.ContentMode, ContentBinary, ContentStructured))
	}
	switch c.Dedup {
	case DedupAuto, DedupEntryID, DedupGuard, DedupIDMP, DedupNone:
	default:
		errs = append(errs, fmt.Errorf("dedup %q: want %s", c.Dedup, strings.Join([]string{DedupAuto, DedupEntryID, DedupGuard, DedupIDMP, DedupNone}, ", ")))
	}
	if c.GuardTTL < time.Millisecond {
		errs = append(errs, fmt.Errorf("guard_ttl %s: must be at least 1ms", c.GuardTTL))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("batch_size %d: must be positive", c.BatchSize))
	}
	if c.MaxInFlight < c.BatchSize {
		errs = append(errs, fmt.Errorf("max_in_flight %d: must be at least batch_size (%d)", c.MaxInFlight, c.BatchSize))
	}
	if c.ConnectTimeout < 0 || c.Timeout < 0 {
		errs = append(errs, errors.New("connect_timeout and timeout must not be negative"))
	}
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
