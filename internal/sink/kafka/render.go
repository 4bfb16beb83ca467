package kafka

import (
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Rendered is an event as the Kafka sink would produce it: the record's
// topic, key, headers and value, in the configured content mode.
type Rendered struct {
	Topic   string
	Key     []byte
	Headers [][2]string // name, value, in the order they are sent
	Value   []byte      // nil: a record without a value
	Mode    string      // binary or structured
}

// Render builds the record the sink configured by cfg sends for e, with the
// same encoding as Publish (record.go), without connecting. It returns the
// *sink.DestinationError of an event the topic template cannot route. Safe
// for concurrent use.
func Render(cfg Config, e *event.Event) (Rendered, error) {
	cfg = cfg.withDefaults()
	out := Rendered{Mode: cfg.ContentMode}
	tmpl, err := sink.ParseDestination(cfg.Topic, topicRules)
	if err != nil {
		return out, err
	}
	topic, err := tmpl.Destination(e)
	if err != nil {
		return out, err
	}
	var r rec
	var ext extHeaders
	r.build(e, topic, cfg.ContentMode == ModeStructured, time.Now(), &ext)
	out.Topic = r.kr.Topic
	out.Key = append([]byte(nil), r.kr.Key...)
	for _, h := range r.kr.Headers {
		out.Headers = append(out.Headers, [2]string{h.Key, string(h.Value)})
	}
	if r.kr.Value != nil {
		out.Value = append([]byte{}, r.kr.Value...)
	}
	return out, nil
}
