package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/config"
)

// The effective configuration an operator may see (the admin console's)
// holds no secret, and making it leaves the running configuration as it was.
func TestRedactedHidesEverySecret(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(writeConfig(t, `
postgres: {url: "postgres://app:Pg1Secret@db:5432/app"}
sinks:
  - name: k
    type: kafka
    kafka: {brokers: ["127.0.0.1:9092"], sasl: {mechanism: PLAIN, username: u, password: Kafka2Secret}}
  - name: n
    type: nats
    nats: {url: "nats://u:Nats3Secret@127.0.0.1:4222", stream: {name: S}, token: Tok4Secret}
  - name: n2
    type: nats
    nats: {url: "nats://127.0.0.1:4222", stream: {name: S}, user: u, password: Nats5Secret}
  - name: r
    type: redis
    redis: {password: Redis6Secret}
admin:
  enabled: true
  tokens: [{name: ci, token: Adm7Secret-0123456789}]
  users: [{name: ann, password_hash: "$2a$10$Usr8SecretUsr8SecretUsr8ShVXVbVZaHWb4sI7yWwHbJtqJ2b9wq2"}]
`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"Pg1Secret", "Kafka2Secret", "Nats3Secret", "Tok4Secret", "Nats5Secret", "Redis6Secret", "Adm7Secret", "Usr8Secret"}
	// %+v shows every field (Kafka's SASL hides its password itself, so it
	// is added by hand).
	dump := func(c *config.Config) string {
		return fmt.Sprintf("%+v %+v %s %+v %+v %+v %+v", *c, *c.Sinks[0].Kafka, c.Sinks[0].Kafka.SASL.Password,
			*c.Sinks[1].NATS, *c.Sinks[2].NATS, *c.Sinks[3].Redis, c.Admin)
	}
	before := dump(cfg)
	r := cfg.Redacted()
	shown := dump(r)
	for _, s := range secrets {
		if strings.Contains(shown, s) {
			t.Errorf("Redacted shows %s:\n%s", s, shown)
		}
		if !strings.Contains(before, s) {
			t.Errorf("the configuration lost %s to Redacted:\n%s", s, before)
		}
	}
	if after := dump(cfg); after != before {
		t.Errorf("Redacted changed the configuration:\n%s\n%s", before, after)
	}
	if r.Postgres.URL != "postgres://app:"+config.Mask+"@db:5432/app" || r.Sinks[0].Kafka.SASL.Username != "u" || r.Sinks[2].NATS.User != "u" {
		t.Errorf("Redacted hid more than the secrets: %q, %+v, %+v", r.Postgres.URL, r.Sinks[0].Kafka.SASL, r.Sinks[2].NATS)
	}
}
