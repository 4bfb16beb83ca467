package admin

import (
	"encoding/base64"
	"unicode/utf8"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/kafka"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/nats"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/redis"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
)

// Binding is an event as one sink sends it, in the sink's protocol binding
// and content mode: Kafka's record (key, ce_ headers, value), NATS's
// message (subject, headers, payload), Redis's entry (stream, fields), the
// file sink's line.
type Binding struct {
	Sink string `json:"sink"`
	Type string `json:"type"`
	// Routed is false when the sink's route does not take the event.
	Routed bool   `json:"routed"`
	Mode   string `json:"mode,omitempty"` // binary or structured
	// DestinationKind is topic, subject, stream or file; Destination its
	// name for this event.
	DestinationKind string `json:"destination_kind,omitempty"`
	Destination     string `json:"destination,omitempty"`
	Stream          string `json:"stream,omitempty"` // the JetStream stream of a NATS sink
	Key             string `json:"key,omitempty"`    // the Kafka record key
	// Headers are the record's or message's headers, or the entry's
	// fields, in order.
	Headers []Header `json:"headers,omitempty"`
	// Body is the value, payload or line; BodyEncoding is text, or base64
	// for bytes that are not UTF-8.
	Body         string `json:"body,omitempty"`
	BodyEncoding string `json:"body_encoding,omitempty"`
	// Error is why the sink cannot send the event (a destination its
	// template cannot make).
	Error string `json:"error,omitempty"`
}

// Header is one header or field.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func headers(hs [][2]string) []Header {
	out := make([]Header, len(hs))
	for i, h := range hs {
		out[i] = Header{Name: h[0], Value: h[1]}
	}
	return out
}

func body(b []byte) (string, string) {
	if b == nil {
		return "", ""
	}
	if utf8.Valid(b) {
		return string(b), "text"
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

// render shows e as the sink sc sends it.
func render(sc config.Sink, e *event.Event) Binding {
	b := Binding{Sink: sc.Name, Type: string(sc.Type), Routed: sc.Route.Sink().Match(e)}
	if !b.Routed {
		return b
	}
	switch sc.Type {
	case config.SinkKafka:
		r, err := kafka.Render(wiring.Kafka(sc), e)
		if err != nil {
			b.Error = err.Error()
			return b
		}
		b.Mode, b.DestinationKind, b.Destination, b.Key = r.Mode, "topic", r.Topic, string(r.Key)
		b.Headers = headers(r.Headers)
		b.Body, b.BodyEncoding = body(r.Value)
	case config.SinkNATS:
		r, err := nats.Render(wiring.NATS(sc), e)
		if err != nil {
			b.Error = err.Error()
			return b
		}
		b.Mode, b.DestinationKind, b.Destination, b.Stream = r.Mode, "subject", r.Subject, r.Stream
		b.Headers = headers(r.Headers)
		b.Body, b.BodyEncoding = body(r.Data)
	case config.SinkRedis:
		r, err := redis.Render(wiring.Redis(sc), e)
		if err != nil {
			b.Error = err.Error()
			return b
		}
		b.Mode, b.DestinationKind, b.Destination = r.Mode, "stream", r.Stream
		b.Headers = headers(r.Fields)
	default:
		b.Mode, b.DestinationKind = "structured", "file"
		b.Destination = wiring.File(sc).Path
		b.Body, b.BodyEncoding = string(e.AppendJSON(nil)), "text"
	}
	return b
}
