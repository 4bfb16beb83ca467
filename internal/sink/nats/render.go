package nats

import (
	"slices"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Rendered is an event as the NATS sink would publish it: the subject, the
// headers (Nats-Msg-Id among them) and the payload, in the configured
// content mode.
type Rendered struct {
	Stream  string
	Subject string
	Headers [][2]string // name, value, sorted by name
	Data    []byte
	Mode    string // binary or structured
}

// Render builds the message the sink configured by cfg publishes for e,
// with the same encoder as Publish (encode.go), without connecting. The
// Nats-Expected-Last-Msg-Id header of strict order is left out: it depends
// on the message published before. It returns the *sink.DestinationError of
// an event the subject template cannot route. Safe for concurrent use.
func Render(cfg Config, e *event.Event) (Rendered, error) {
	cfg = cfg.withDefaults()
	out := Rendered{Mode: cfg.ContentMode, Stream: cfg.Stream.Name}
	tmpl, err := sink.ParseDestination(cfg.Subject, subjectRules)
	if err != nil {
		return out, err
	}
	subject, err := tmpl.Destination(e)
	if err != nil {
		return out, err
	}
	var en entry
	newEncoder(cfg.ContentMode == ModeStructured).encode(e, subject, &en)
	out.Subject = en.msg.Subject
	for k, vs := range en.msg.Header {
		for _, v := range vs {
			if v != "" {
				out.Headers = append(out.Headers, [2]string{k, v})
			}
		}
	}
	slices.SortFunc(out.Headers, func(a, b [2]string) int {
		if a[0] < b[0] {
			return -1
		}
		if a[0] > b[0] {
			return 1
		}
		return 0
	})
	out.Data = append([]byte(nil), en.msg.Data...)
	return out, nil
}
