package event_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// outboxRowEvent is an event shaped like a typical outbox row: JSON data of
// about 250 bytes, a partition key and the pglsn extension.
func outboxRowEvent() *event.Event {
	return &event.Event{
		ID:              "0b6a4c1e-6a43-4f3b-9d6c-8f1f0c3a2b11",
		Source:          "/pg/shop/public.outbox",
		Type:            "order.updated",
		Subject:         "order-42",
		DataContentType: "application/json",
		Time:            eventTime.Truncate(time.Microsecond), // PostgreSQL's precision
		Extensions: []event.Extension{
			{Name: "partitionkey", Value: "order-42"},
			{Name: "pglsn", Value: "16/B374D848"},
		},
		Data: []byte(`{"order_id":"order-42","customer":"c-7","status":"paid","total":{"amount":1050,"currency":"EUR"},` +
			`"lines":[{"sku":"sku-1","qty":2},{"sku":"sku-2","qty":1}],"note":"benchmark payload padding........"}`),
		DataKind: event.DataJSON,
	}
}

// sdkEvent builds the CloudEvents SDK's event for e, as a relay built on
// the SDK would for every row.
func sdkEvent(b *testing.B, e *event.Event) ce.Event {
	s := ce.New()
	s.SetID(e.ID)
	s.SetSource(e.Source)
	s.SetType(e.Type)
	s.SetSubject(e.Subject)
	s.SetTime(e.Time)
	for _, x := range e.Extensions {
		s.SetExtension(x.Name, x.Value)
	}
	if err := s.SetData(e.DataContentType, json.RawMessage(e.Data)); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkCloudEventsJSON justifies the hand-written encoder
// (Event.AppendJSON) against the CloudEvents Go SDK's JSON format on the
// same outbox-shaped event: "sdk-go" marshals a ready SDK event, "sdk-go
// build+marshal" also builds it from the row as a relay would per event.
// go test -run X -bench CloudEventsJSON ./event
func BenchmarkCloudEventsJSON(b *testing.B) {
	e := outboxRowEvent()
	size := int64(len(e.AppendJSON(nil)))
	// Both encode the same event.
	sdkJSON, err := sdkEvent(b, e).MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	var ours, theirs map[string]any
	if json.Unmarshal(e.AppendJSON(nil), &ours) != nil || json.Unmarshal(sdkJSON, &theirs) != nil || !reflect.DeepEqual(ours, theirs) {
		b.Fatalf("the encoders disagree:\n%s\n%s", e.AppendJSON(nil), sdkJSON)
	}
	b.Run("outbox-cdc", func(b *testing.B) {
		buf := e.AppendJSON(nil)
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			buf = e.AppendJSON(buf[:0])
		}
	})
	b.Run("sdk-go", func(b *testing.B) {
		s := sdkEvent(b, e)
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sdk-go build+marshal", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			s := sdkEvent(b, e)
			if _, err := s.MarshalJSON(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
