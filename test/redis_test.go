package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	goredis "github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

type redisKit struct {
	r      *harness.Redis
	stream string
}

func redisBroker(t *testing.T) broker {
	return shared(t, "redis", func(ctx context.Context) (broker, func(), error) {
		// Append-only, so a stopped server comes back with its streams.
		r, err := harness.StartRedis(ctx, harness.RedisOptions{AppendOnly: true})
		if err != nil {
			return nil, nil, err
		}
		return &redisKit{r: r}, func() { r.Close() }, nil
	})
}

func (k *redisKit) name() string { return "redis" }

func (k *redisKit) sinkYAML(name string) string {
	k.stream = fmt.Sprintf("e2e:%d", time.Now().UnixNano())
	return fmt.Sprintf(`  - name: %s
    type: redis
    redis: {address: %q, stream: %q, retry: {initial: 100ms, max: 1s}}`, name, k.r.Addr(), k.stream)
}

func (k *redisKit) stop(t *testing.T) {
	t.Helper()
	if err := k.r.Stop(); err != nil {
		t.Fatal(err)
	}
}

func (k *redisKit) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := k.r.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// readAll reads the stream with XRANGE and decodes each entry's fields as
// the sink documents them, into an SDK event.
func (k *redisKit) readAll(t *testing.T) []received {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: k.r.Addr()})
	defer c.Close()
	var out []received
	start := "-"
	for {
		msgs, err := c.XRangeN(context.Background(), k.stream, start, "+", 5000).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			out = append(out, redisEntryEvent(t, m))
		}
		if len(msgs) < 5000 {
			return out
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

func redisEntryEvent(t *testing.T, m goredis.XMessage) received {
	t.Helper()
	h := map[string]string{}
	for k, v := range m.Values {
		h[k] = fmt.Sprint(v)
	}
	ce := cloudevents.New(h["specversion"])
	ce.SetID(h["id"])
	ce.SetSource(h["source"])
	ce.SetType(h["type"])
	if v, ok := h["subject"]; ok {
		ce.SetSubject(v)
	}
	if v, ok := h["time"]; ok {
		ts, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			t.Fatal(err)
		}
		ce.SetTime(ts)
	}
	for name, v := range h {
		switch name {
		case "specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data":
		default:
			ce.SetExtension(name, v)
		}
	}
	if err := ce.SetData(h["datacontenttype"], []byte(h["data"])); err != nil {
		t.Fatal(err)
	}
	if err := ce.Validate(); err != nil {
		t.Fatalf("entry %s is not a valid CloudEvent: %v", m.ID, err)
	}
	return received{ce: ce, key: m.ID, headers: h}
}
