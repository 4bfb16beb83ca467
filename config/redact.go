package config

import (
	"maps"
	"slices"

	"github.com/outbox-cdc/outbox-cdc/internal/pgconn"
)

// Mask replaces a secret in a Redacted configuration.
const Mask = "xxxxx"

// Redacted returns a deep copy of c in which every secret is replaced by
// Mask: the password in postgres.url, the user info of nats.url, and the
// password and token keys of the broker sections, the admin tokens and the
// admin users' password hashes (an empty secret stays empty). It is the
// effective configuration as an operator may see it.
func (c *Config) Redacted() *Config {
	r := *c
	r.Postgres.URL = pgconn.RedactConnString(c.Postgres.URL)
	r.Postgres.Roles.Writers = slices.Clone(c.Postgres.Roles.Writers)
	r.Outbox.Tables = slices.Clone(c.Outbox.Tables)
	r.Sinks = slices.Clone(c.Sinks)
	for i := range r.Sinks {
		s := &r.Sinks[i]
		s.Route.Types = slices.Clone(s.Route.Types)
		s.Route.AggregateTypes = slices.Clone(s.Route.AggregateTypes)
		if s.Kafka != nil {
			k := *s.Kafka
			k.Brokers = slices.Clone(k.Brokers)
			k.TopicConfig = maps.Clone(k.TopicConfig)
			k.SASL.Password = mask(k.SASL.Password)
			s.Kafka = &k
		}
		if s.NATS != nil {
			n := *s.NATS
			n.URL = pgconn.RedactURL(n.URL)
			n.Stream.Subjects = slices.Clone(n.Stream.Subjects)
			n.Password, n.Token = mask(n.Password), mask(n.Token)
			s.NATS = &n
		}
		if s.Redis != nil {
			d := *s.Redis
			d.Password = mask(d.Password)
			s.Redis = &d
		}
	}
	r.Admin.Tokens = slices.Clone(c.Admin.Tokens)
	for i := range r.Admin.Tokens {
		r.Admin.Tokens[i].Token = mask(r.Admin.Tokens[i].Token)
	}
	r.Admin.Users = slices.Clone(c.Admin.Users)
	for i := range r.Admin.Users {
		r.Admin.Users[i].PasswordHash = mask(r.Admin.Users[i].PasswordHash)
	}
	return &r
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return Mask
}
