package kafka

import (
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/outbox-cdc/outbox-cdc/handler"
)

type (
	kmsgReq  = kmsg.OffsetCommitRequest
	kmsgResp = kmsg.OffsetCommitResponse
)

func kerrFor(code int16) error { return kerr.ErrorForCode(code) }

// decode turns a record into a delivery, per the Kafka protocol binding.
func decode(r *kgo.Record) *handler.Delivery {
	d := &handler.Delivery{Position: fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset)}
	var ct string
	attrs := map[string]string{}
	for _, h := range r.Headers {
		switch k := strings.ToLower(h.Key); {
		case k == "content-type":
			ct = string(h.Value)
		case strings.HasPrefix(k, "ce_"):
			attrs[k[3:]] = string(h.Value)
		}
	}
	switch {
	case handler.IsStructured(ct):
		d.Event, d.Err = handler.FromStructured(r.Value)
	case attrs["specversion"] != "":
		if ct != "" {
			attrs["datacontenttype"] = ct
		}
		d.Event, d.Err = handler.FromBinary(attrs, r.Value)
	default:
		d.Err = errors.New("neither binary mode (no ce_specversion header) nor structured mode (content-type is not application/cloudevents+json)")
	}
	if d.Err == nil {
		d.Key = handler.Key(&d.Event, string(r.Key))
	}
	return d
}
