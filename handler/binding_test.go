package handler_test

import (
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/handler"
)

func TestBindings(t *testing.T) {
	e, err := handler.FromBinary(map[string]string{"specversion": "1.0", "id": "1", "source": "/s", "type": "t.x",
		"time": "2026-11-27T08:38:48.557077Z", "partitionkey": "42", "datacontenttype": "application/json"}, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != "1" || e.Time().IsZero() || handler.Key(&e, "fallback") != "42" || string(e.Data()) != `{"a":1}` {
		t.Fatalf("%v", e)
	}
	if _, err := handler.FromBinary(map[string]string{"specversion": "1.0", "id": "1", "type": "t"}, nil); err == nil {
		t.Fatal("an event without source was accepted")
	}
	s, err := handler.FromStructured([]byte(`{"specversion":"1.0","id":"2","source":"/s","type":"t","data_base64":"AAE="}`))
	if err != nil || len(s.Data()) != 2 || handler.Key(&s, "k") != "k" {
		t.Fatalf("%v %v", s, err)
	}
	if _, err := handler.FromStructured([]byte(`{"id":"2"}`)); err == nil {
		t.Fatal("a JSON object without specversion was accepted")
	}
	if !handler.IsStructured("application/cloudevents+json; charset=utf-8") || handler.IsStructured("application/json") {
		t.Fatal("IsStructured")
	}
	o := &event.Event{ID: "9", Source: "/shop", Type: "order.paid", AggregateID: "7", Time: time.Now(), CommitLSN: 0x16B3748,
		Extensions: []event.Extension{{Name: "partitionkey", Value: "7"}}, Data: []byte(`{"n":1}`), DataKind: event.DataJSON}
	c := handler.FromOutbox(o)
	if err := c.Validate(); err != nil || c.Extensions()["pglsn"] != "0/16B3748" || handler.Key(&c, "") != "7" || string(c.Data()) != `{"n":1}` {
		t.Fatalf("%v %v", c, err)
	}
}
