package config

import (
	"strings"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/internal/observe"
	"github.com/outbox-cdc/outbox-cdc/internal/replication"
	"github.com/outbox-cdc/outbox-cdc/internal/retention"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Defaults of keys this package owns (the others are the constants of the
// package each key tunes).
const (
	DefaultSlot        = "outbox_cdc"
	DefaultPublication = "outbox_cdc"
	DefaultDeadLetter  = "public.outbox_dead_letter"
	// DefaultPublicationCheck is the longest time between two checks of the
	// outbox tables' publication membership.
	DefaultPublicationCheck = 5 * time.Second
)

// setDefaults fills every key left empty (or zero where zero means "the
// default"), once, after the file and the environment were decoded. Negative
// values are left for validate to report. The brokers' sections are the
// exception: their zero fields mean the broker package's defaults, which the
// package applies when the sink is built (see kafkaConfig, natsConfig,
// redisConfig).
func (c *Config) setDefaults() {
	p := &c.Postgres
	str(&p.Slot, DefaultSlot)
	str(&p.Publication, DefaultPublication)
	dur(&p.StatusInterval, replication.DefaultStatusInterval)
	dur(&p.ConnectTimeout, replication.DefaultConnectTimeout)
	dur(&p.DrainTimeout, replication.DefaultDrainTimeout)
	dur(&p.StandbyPoll, replication.DefaultStandbyPoll)
	p.Retry.setDefaults(replication.DefaultRetryInitial, replication.DefaultRetryMax)
	dur(&p.PublicationCheck, DefaultPublicationCheck)
	if p.DDLGuard == "" {
		p.DDLGuard = DDLGuardAuto
	}
	if p.FailoverSlot == "" {
		p.FailoverSlot = FailoverSlotAuto
	}

	// The decoder defines the outbox's defaults (tables, columns, prefixes).
	d := c.decoderConfig().WithDefaults()
	c.Outbox.Tables = make([]Table, len(d.Tables))
	for i, t := range d.Tables {
		c.Outbox.Tables[i] = Table{Name: t.Name, DefaultSource: t.DefaultSource, Columns: Columns(t.Columns)}
	}
	c.Outbox.Messages.Prefix, c.Outbox.HeartbeatPrefix = d.MessagePrefix, d.HeartbeatPrefix
	if c.Outbox.OnInvalid == "" {
		c.Outbox.OnInvalid = sink.PolicyBlock
	}
	r := &c.Outbox.Retention
	dur(&r.Interval, retention.DefaultInterval)
	num(&r.Batch, retention.DefaultBatch)

	num(&c.Window.MaxEvents, checkpoint.DefaultMaxEvents)
	num(&c.Window.MaxBytes, checkpoint.DefaultMaxBytes)

	for i := range c.Sinks {
		s := &c.Sinks[i]
		num(&s.MaxBatch, sink.DefaultMaxBatch)
		if s.Policy == "" {
			s.Policy = sink.PolicyBlock
		}
		s.Retry.setDefaults(retry.DefaultInitial, retry.DefaultMax)
	}

	if c.DeadLetter.Table == "" {
		c.DeadLetter.Table = DefaultDeadLetter
	} else if !strings.Contains(c.DeadLetter.Table, ".") {
		c.DeadLetter.Table = "public." + c.DeadLetter.Table
	}

	h := &c.HTTP
	str(&h.Addr, observe.DefaultAddr)
	dur(&h.SlotPoll, observe.DefaultSlotPoll)
	dur(&h.SinkTimeout, observe.DefaultSinkTimeout)
	dur(&h.MaxLag, observe.DefaultMaxLag)
	num(&h.MaxLagBytes, observe.DefaultMaxLagBytes)
	dur(&h.Stall, observe.DefaultStall)

	c.Admin.setDefaults()

	dur(&c.Heartbeat.Interval, DefaultHeartbeatInterval)
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}

func (b *Backoff) setDefaults(initial, maxd time.Duration) {
	dur(&b.Initial, initial)
	dur(&b.Max, maxd)
	if b.Multiplier == 0 {
		b.Multiplier = retry.DefaultMultiplier
	}
}

func str(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func dur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func num[T int | int64](n *T, def T) {
	if *n == 0 {
		*n = def
	}
}
