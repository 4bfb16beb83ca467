package replication

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	pgc "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
)

// Defaults.
const (
	DefaultStatusInterval = 500 * time.Millisecond
	DefaultStandbyPoll    = time.Second
	DefaultDrainTimeout   = 30 * time.Second
	DefaultConnectTimeout = pgc.DefaultConnectTimeout
	DefaultCloseTimeout   = time.Second
	// DefaultRetryInitial and DefaultRetryMax are Retry's defaults (its
	// multiplier is retry.DefaultMultiplier).
	DefaultRetryInitial = 500 * time.Millisecond
	DefaultRetryMax     = 10 * time.Second
)

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Config configures a Stream.
type Config struct {
	// URL is a libpq connection string or URL; replication=database is added.
	URL string
	// Slot is the permanent pgoutput replication slot to stream from.
	Slot string
	// Publication names the publication pgoutput filters by.
	Publication string
	// StatusInterval is how often the safe position is reported to the
	// server. Default 500ms.
	StatusInterval time.Duration
	// StandbyPoll is how often a standby checks whether the slot is free.
	// Default 1s.
	StandbyPoll time.Duration
	// DrainTimeout bounds the wait for in-flight events at shutdown and
	// before a reconnect. Default 30s.
	DrainTimeout time.Duration
	// ConnectTimeout bounds each connection attempt. Default 10s.
	ConnectTimeout time.Duration
	// CloseTimeout bounds the goodbye to the server when a connection is
	// closed, after the last status update. Default 1s; the application
	// sets it from its shutdown budget.
	CloseTimeout time.Duration
	// Retry is the backoff between reconnect attempts. Default 500ms
	// doubling to 10s.
	Retry retry.Backoff
	// NoKeepaliveFollow stops the confirmed position from following the
	// server's keepalive WAL end while nothing is in flight. For tests that
	// need to see WAL pinned; never set it in production.
	NoKeepaliveFollow bool
}

// Validate checks c and returns every problem, joined.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("postgres url is empty"))
	}
	if !identRE.MatchString(c.Slot) {
		errs = append(errs, fmt.Errorf("slot name %q: use lower-case letters, digits and underscores (at most 63)", c.Slot))
	}
	if !identRE.MatchString(c.Publication) {
		errs = append(errs, fmt.Errorf("publication name %q: use lower-case letters, digits and underscores (at most 63)", c.Publication))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.StatusInterval <= 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.StandbyPoll <= 0 {
		c.StandbyPoll = DefaultStandbyPoll
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.Retry.Initial <= 0 {
		c.Retry.Initial = DefaultRetryInitial
	}
	if c.Retry.Max <= 0 {
		c.Retry.Max = DefaultRetryMax
	}
	return c
}
