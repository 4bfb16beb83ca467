package redis

import (
	"fmt"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Rendered is an event as the Redis sink would add it: the stream and the
// entry's fields in order, in the configured content mode.
type Rendered struct {
	Stream string
	Fields [][2]string // name, value, in the order XADD writes them
	Mode   string      // binary or structured
	Dedup  string      // the configured dedup mode ("auto" is decided when the sink connects)
}

// Render builds the entry the sink configured by cfg adds for e, with the
// same encoder as Publish (encode.go), without connecting. It returns the
// *sink.DestinationError of an event the stream template cannot route, and
// the error of an event the binary layout cannot hold. Safe for concurrent
// use.
func Render(cfg Config, e *event.Event) (Rendered, error) {
	cfg = cfg.WithDefaults()
	out := Rendered{Mode: cfg.ContentMode, Dedup: cfg.Dedup}
	tmpl, err := sink.ParseDestination(cfg.Stream, streamRules)
	if err != nil {
		return out, err
	}
	enc := encoder{stream: tmpl, structured: cfg.ContentMode == ContentStructured}
	var r record
	if err := enc.encode(e, &r); err != nil {
		return out, err
	}
	out.Stream = r.stream
	for i := 0; i+1 < len(r.vals); i += 2 {
		out.Fields = append(out.Fields, [2]string{text(r.vals[i]), text(r.vals[i+1])})
	}
	return out, nil
}

// text is an XADD argument as Redis receives it.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case *string:
		return *v
	}
	return fmt.Sprint(v)
}
