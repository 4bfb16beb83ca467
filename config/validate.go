package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	pgc "github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

// validate reports every problem of the decoded, defaulted configuration
// into p. Zero values were replaced by defaults before, so "must be
// positive" catches what is negative.
func (c *Config) validate(p *problems) {
	pg := c.Postgres
	if pg.URL == "" {
		p.addErr("postgres.url", errNoURL)
	}
	if pg.URL != "" { // else reported above
		if err := c.replicationConfig().Validate(); err != nil {
			p.addJoined("postgres", err) // slot and publication names
		}
	}
	positive(p, "postgres.status_interval", pg.StatusInterval)
	positive(p, "postgres.connect_timeout", pg.ConnectTimeout)
	positive(p, "postgres.drain_timeout", pg.DrainTimeout)
	positive(p, "postgres.standby_poll", pg.StandbyPoll)
	positive(p, "postgres.publication_check", pg.PublicationCheck)
	pg.Retry.validate(p, "postgres.retry")

	if err := c.decoderConfig().Validate(); err != nil {
		p.addJoined("outbox", err)
	}
	r := c.Outbox.Retention
	if r.Age < 0 {
		p.add("outbox.retention.age", "must not be negative (0 turns retention off)")
	}
	positive(p, "outbox.retention.interval", r.Interval)
	positive(p, "outbox.retention.batch", r.Batch)

	positive(p, "window.max_events", c.Window.MaxEvents)
	positive(p, "window.max_bytes", c.Window.MaxBytes)

	c.validateSinks(p)

	h := c.HTTP
	if err := checkAddr(h.Addr); err != nil {
		p.addErr("http.addr", err)
	}
	positive(p, "http.slot_poll", h.SlotPoll)
	positive(p, "http.sink_timeout", h.SinkTimeout)
	positive(p, "http.max_lag", h.MaxLag)
	positive(p, "http.max_lag_bytes", h.MaxLagBytes)
	positive(p, "http.stall", h.Stall)
	if h.Linger < 0 {
		p.add("http.linger", "must not be negative (0 exits at once)")
	}

	c.Admin.validate(p)

	positive(p, "heartbeat.interval", c.Heartbeat.Interval)

	for i, r := range c.Postgres.Roles.Writers {
		if r == "" {
			p.add(fmt.Sprintf("postgres.roles.writers[%d]", i), "is empty")
		}
	}
	// Parsed once here, so that no later parse error (which pgx words with
	// pieces of the string) can show the password.
	if pg.URL != "" {
		if _, err := pgconn.ParseConfig(pg.URL); err != nil {
			p.addErr("postgres.url", pgc.RedactError(err))
		}
	}
}

func (c *Config) validateSinks(p *problems) {
	if len(c.Sinks) == 0 {
		p.add("sinks", "at least one sink is required")
		return
	}
	names := map[string]int{}
	paths := map[string]int{}
	for i, s := range c.Sinks {
		key := fmt.Sprintf("sinks[%d]", i)
		at := func(k string) string { return key + "." + k }
		switch j, dup := names[s.Name]; {
		case s.Name == "":
			p.add(at("name"), "is required")
		case dup:
			p.add(at("name"), "%q is used twice (also by sinks[%d])", s.Name, j)
		default:
			names[s.Name] = i
		}
		if err := s.Route.Sink().Validate(); err != nil {
			p.addErr(at("route"), err)
		}
		positive(p, at("max_batch"), s.MaxBatch)
		s.Retry.validate(p, at("retry"))

		if s.Type == "" {
			p.add(at("type"), "is required (file, stdout, kafka, nats or redis)")
			continue
		}
		for _, typ := range []SinkType{SinkKafka, SinkNATS, SinkRedis} {
			if s.sections()[typ] && typ != s.Type {
				p.add(at(string(typ)), "a %s section on a %s sink: remove it, or set type: %s", typ, s.Type, typ)
			}
		}
		switch s.Type {
		case SinkFile, SinkStdout:
			if s.Type == SinkFile && s.Path == "" {
				p.add(at("path"), "is required for a file sink")
				break
			}
			if s.Type == SinkStdout && (s.Path != "" || s.Sync || s.Mode != "") {
				p.add(key, "path, sync and mode apply only to file sinks (stdout writes to standard output)")
				break
			}
			if _, err := parseMode(s.Mode); err != nil {
				p.addErr(at("mode"), err)
			}
			if err := s.fileConfig().Validate(); err != nil {
				p.addErr(at("sync"), err)
			}
			out := s.fileConfig().Path
			if out != "-" {
				if abs, err := filepath.Abs(out); err == nil {
					out = abs
				}
			}
			if j, dup := paths[out]; dup {
				what := out
				if what == "-" {
					what = "standard output"
				}
				p.add(at("path"), "%s is also written by sinks[%d]: every event would be written twice; give each sink its own file", what, j)
			} else {
				paths[out] = i
			}
		default:
			if s.Path != "" || s.Sync || s.Mode != "" {
				p.add(key, "path, sync and mode apply only to file sinks")
			}
			if !s.sections()[s.Type] {
				p.add(at(string(s.Type)), "is required for a %s sink", s.Type)
				continue
			}
			sec := at(string(s.Type))
			switch s.Type {
			case SinkKafka:
				s.Kafka.Retry.validateSet(p, sec+".retry")
			case SinkNATS:
				s.NATS.Retry.validateSet(p, sec+".retry")
			case SinkRedis:
				s.Redis.Retry.validateSet(p, sec+".retry")
			}
			if err := s.validateBroker(); err != nil {
				p.addJoined(sec, err)
			}
		}
	}
}

// validate checks a defaulted backoff.
func (b Backoff) validate(p *problems, key string) {
	positive(p, key+".initial", b.Initial)
	positive(p, key+".max", b.Max)
	if b.Multiplier < 1 {
		p.add(key+".multiplier", "must be at least 1 (the delay must not shrink), got %v", b.Multiplier)
	}
}

// validateSet checks a backoff whose zero fields mean a default elsewhere.
func (b Backoff) validateSet(p *problems, key string) {
	if b.Initial < 0 {
		positive(p, key+".initial", b.Initial)
	}
	if b.Max < 0 {
		positive(p, key+".max", b.Max)
	}
	if b.Multiplier != 0 && b.Multiplier < 1 {
		p.add(key+".multiplier", "must be at least 1 (the delay must not shrink), got %v", b.Multiplier)
	}
}

func positive[T int | int64 | time.Duration](p *problems, key string, v T) {
	if v <= 0 {
		p.add(key, "must be positive, got %v", v)
	}
}

// checkAddr accepts "-" and host:port with a numeric port.
func checkAddr(addr string) error {
	if addr == "-" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		var n uint64
		if n, err = strconv.ParseUint(port, 10, 16); err == nil && n <= 65535 {
			return nil
		}
	}
	return errors.New(strconv.Quote(addr) + ` is not host:port (such as 127.0.0.1:9187), nor "-" to turn the server off`)
}
