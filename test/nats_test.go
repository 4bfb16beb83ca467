package test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

type natsKit struct {
	n      *harness.NATS
	stream string
}

func natsBroker(t *testing.T) broker {
	return shared(t, "nats", func(ctx context.Context) (broker, func(), error) {
		n, err := harness.StartNATS(ctx, harness.NATSOptions{})
		if err != nil {
			return nil, nil, err
		}
		return &natsKit{n: n}, func() { n.Close() }, nil
	})
}

func (k *natsKit) name() string { return "nats" }

func (k *natsKit) sinkYAML(name string) string {
	k.stream = fmt.Sprintf("E2E%d", time.Now().UnixNano())
	subj := strings.ToLower(k.stream)
	return fmt.Sprintf(`  - name: %s
    type: nats
    nats:
      url: %q
      subject: %s.{{.AggregateType}}
      stream: {name: %s, create: true, subjects: ["%s.>"]}
      retry: {initial: 100ms, max: 1s}
      reconnect_wait: 200ms`, name, k.n.URL(), subj, k.stream, subj)
}

func (k *natsKit) stop(t *testing.T) {
	t.Helper()
	if err := k.n.Stop(); err != nil {
		t.Fatal(err)
	}
}

func (k *natsKit) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := k.n.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// readAll reads the whole stream with an ordered consumer on its own
// connection and decodes each message per the CloudEvents NATS binding.
func (k *natsKit) readAll(t *testing.T) []received {
	t.Helper()
	nc, err := natsgo.Connect(k.n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, k.stream)
	if err != nil {
		return nil // not created yet
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := info.State.Msgs
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []received
	for uint64(len(out)) < total {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			out = append(out, natsMessageEvent(t, m))
		}
		if n == 0 {
			break
		}
	}
	return out
}

// natsMessageEvent decodes a message per the CloudEvents NATS binding:
// structured (content-type application/cloudevents+json, the sink's
// default) or binary (ce- headers with percent-encoded values, data in the
// payload).
func natsMessageEvent(t *testing.T, m jetstream.Msg) received {
	t.Helper()
	if strings.HasPrefix(m.Headers().Get("content-type"), "application/cloudevents") {
		ce := cloudevents.New()
		if err := ce.UnmarshalJSON(m.Data()); err != nil {
			t.Fatalf("structured message on %s: %v", m.Subject(), err)
		}
		if got, want := m.Headers().Get("Nats-Msg-Id"), event.DedupKey(ce.Source(), ce.ID()); got != want {
			t.Fatalf("Nats-Msg-Id %q, want %q (source %q, id %q)", got, want, ce.Source(), ce.ID())
		}
		h := map[string]string{}
		for key, vs := range m.Headers() {
			h[strings.ToLower(key)] = vs[0]
		}
		return received{ce: ce, key: m.Subject(), headers: h}
	}
	h := map[string]string{}
	for key, vs := range m.Headers() {
		v, err := url.PathUnescape(vs[0])
		if err != nil {
			t.Fatalf("header %s=%q is not percent-encoded: %v", key, vs[0], err)
		}
		h[strings.ToLower(key)] = v
	}
	ce := cloudevents.New(h["ce-specversion"])
	ce.SetID(h["ce-id"])
	ce.SetSource(h["ce-source"])
	ce.SetType(h["ce-type"])
	if v, ok := h["ce-subject"]; ok {
		ce.SetSubject(v)
	}
	if v, ok := h["ce-time"]; ok {
		ts, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			t.Fatal(err)
		}
		ce.SetTime(ts)
	}
	for key, v := range h {
		if name, ok := strings.CutPrefix(key, "ce-"); ok {
			switch name {
			case "specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema":
			default:
				ce.SetExtension(name, v)
			}
		}
	}
	if err := ce.SetData(h["ce-datacontenttype"], m.Data()); err != nil {
		t.Fatal(err)
	}
	if err := ce.Validate(); err != nil {
		t.Fatalf("message on %s is not a valid CloudEvent: %v", m.Subject(), err)
	}
	// The dedup key is CloudEvents identity: source and id (event.DedupKey).
	if got, want := m.Headers().Get("Nats-Msg-Id"), event.DedupKey(ce.Source(), ce.ID()); got != want {
		t.Fatalf("Nats-Msg-Id %q, want %q (source %q, id %q)", got, want, ce.Source(), ce.ID())
	}
	return received{ce: ce, key: m.Subject(), headers: h}
}
