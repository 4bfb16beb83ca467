package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// noAggregateMessage is the README's kind of logical message: a CloudEvent
// without an aggregate type.
func noAggregateMessage(id string) string {
	return fmt.Sprintf(`SELECT pg_logical_emit_message(true, 'outbox', '{"specversion":"1.0","id":"%s","type":"com.example.m","source":"/s","data":{"n":1}}')`, id)
}

// templatedSink returns the broker's sink entry with its destination made a
// template over the aggregate type (its base name, then "." or ":" and the
// field), the destination an event with aggregate type "order" goes to (and
// makes b.readAll read it), and the destination an event without one would
// get.
func templatedSink(t *testing.T, b broker, name, field string) (yaml, order, empty string) {
	t.Helper()
	y := b.sinkYAML(name)
	switch k := b.(type) {
	case *kafkaKit:
		base := k.topic
		y = strings.Replace(y, "topic: "+base, fmt.Sprintf("topic: '%s.%s'", base, field), 1)
		k.topic = base + ".order"
		return y, k.topic, base + "."
	case *natsKit:
		base := strings.ToLower(k.stream)
		y = strings.Replace(y, "subject: "+base+".{{.AggregateType}}", fmt.Sprintf("subject: '%s.%s'", base, field), 1)
		return y, base + ".order", base + "."
	case *redisKit:
		base := k.stream
		y = strings.Replace(y, fmt.Sprintf("stream: %q", base), fmt.Sprintf("stream: '%s:%s'", base, field), 1)
		k.stream = base + ":order"
		return y, k.stream, base + ":"
	}
	t.Fatalf("unknown broker %T", b)
	return
}

// destinationExists reports whether the broker holds a destination named
// name (a Kafka topic, a Redis key; NATS refuses such subjects itself).
func destinationExists(t *testing.T, b broker, name string) bool {
	t.Helper()
	ctx := context.Background()
	switch k := b.(type) {
	case *kafkaKit:
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.k.Addr()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		topics, err := kadm.NewClient(cl).ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return topics.Has(name)
	case *redisKit:
		c := goredis.NewClient(&goredis.Options{Addr: k.r.Addr()})
		defer c.Close()
		n, err := c.Exists(ctx, name).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	return false
}

// Regression (issue 9): "outbox.{{.AggregateType}}" with an event that has no
// aggregate type rendered "outbox.": Kafka wrote to a topic "outbox.", Redis
// to a stream "outbox:", NATS refused it. A destination that cannot exist is
// an invalid event under the sink's policy, named by the template, the
// missing field and the event; the template is checked at start with a
// warning.
func TestDestinationWithMissingField(t *testing.T) {
	for _, get := range allBrokers(t) {
		b := get(t)
		t.Run(b.name(), func(t *testing.T) {
			y, order, empty := templatedSink(t, b, "bus", "{{.AggregateType}}")
			e := brokerEnv(t, y+"\n    policy: dead-letter")
			p := e.start("OUTBOX_CDC_OUTBOX_MESSAGES_ENABLED=true")
			waitFor(t, 20*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
			e.exec(noAggregateMessage("no-agg-1"))
			e.exec(`INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data) VALUES ('ok', '/t', 'order', 'a', '{"agg":"a","seq":0}')`)
			waitFor(t, time.Minute, "the event with an aggregate type at "+order, func() bool { return len(b.readAll(t)) >= 1 })
			waitFor(t, 10*time.Second, "the dead letter", func() bool { return len(e.letters(t)) == 1 })
			l := e.letters(t)[0]
			for _, want := range []string{"no-agg-1", "{{.AggregateType}}", "AggregateType is empty", fmt.Sprintf("%q", empty)} {
				if l.sink != "bus" || l.eventID != "no-agg-1" || !strings.Contains(l.errMsg, want) {
					t.Errorf("dead letter %+v: want it for no-agg-1, its error naming %s", l, want)
				}
			}
			if destinationExists(t, b, empty) {
				t.Errorf("%s holds a destination %q", b.name(), empty)
			}
			for _, r := range b.readAll(t) {
				if r.ce.ID() == "no-agg-1" {
					t.Errorf("the event without an aggregate type was delivered to %q", r.key)
				}
			}
			log := p.log()
			before, _, _ := strings.Cut(log, "outbox-cdc starting")
			if !strings.Contains(before, "level=WARN") || !strings.Contains(before, "AggregateType is empty") {
				t.Errorf("no warning at start about the template and events without an aggregate type:\n%s", tail(log, 20))
			}
			p.stop(t)
		})
	}

	nats := natsBroker(t)
	t.Run("nats-block", func(t *testing.T) {
		y, _, _ := templatedSink(t, nats, "bus", "{{.AggregateType}}")
		e := brokerEnv(t, y+"\n    policy: block\n    retry: {initial: 100ms, max: 300ms}")
		p := e.start("OUTBOX_CDC_POSTGRES_DRAIN_TIMEOUT=1s", "OUTBOX_CDC_OUTBOX_MESSAGES_ENABLED=true")
		waitFor(t, 20*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
		held := e.currentLSN() // the message is written after this point
		e.exec(noAggregateMessage("no-agg-2"))
		waitFor(t, 20*time.Second, "the sink to block on the event", func() bool { return strings.Contains(p.log(), "sink blocked") })
		time.Sleep(time.Second)
		lines := strings.Count(p.log(), "\n")
		time.Sleep(2 * time.Second) // several retries
		if n := strings.Count(p.log(), "\n"); n != lines {
			t.Errorf("%d log lines during 2 s of retrying one blocked event; want none (one line per state change):\n%s", n-lines, tail(p.log(), n-lines))
		}
		log := p.log()
		if !strings.Contains(log, "no-agg-2") || !strings.Contains(log, "AggregateType is empty") {
			t.Errorf("the log does not name the event and the missing field:\n%s", tail(log, 20))
		}
		if c, _ := e.slot(); c > held {
			t.Errorf("the slot moved from %X to %X past a blocked event", held, c)
		}
		p.stop(t)
	})

	t.Run("nats-fallback", func(t *testing.T) {
		y, _, _ := templatedSink(t, nats, "bus", `{{or .AggregateType "misc"}}`)
		e := brokerEnv(t, y)
		p := e.start("OUTBOX_CDC_OUTBOX_MESSAGES_ENABLED=true")
		waitFor(t, 20*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
		e.exec(noAggregateMessage("no-agg-3"))
		waitFor(t, 20*time.Second, "the event at the fallback subject", func() bool { return len(nats.readAll(t)) >= 1 })
		if r := nats.readAll(t)[0]; r.ce.ID() != "no-agg-3" || !strings.HasSuffix(r.key, ".misc") {
			t.Fatalf("event %s on subject %q, want no-agg-3 on <base>.misc", r.ce.ID(), r.key)
		}
		if strings.Contains(p.log(), "AggregateType is empty") {
			t.Errorf("a warning for a template with a fallback:\n%s", tail(p.log(), 20))
		}
		p.stop(t)
	})
}
