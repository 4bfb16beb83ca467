package outbox_test

import (
	"errors"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/outbox"
)

func TestValidate(t *testing.T) {
	w, err := outbox.New(outbox.Table{Columns: outbox.Columns{Subject: "-"}})
	if err != nil {
		t.Fatal(err)
	}
	ok := outbox.Event{Type: "com.example.order.paid", Source: "/shop/orders", AggregateID: "42", Data: map[string]int{"n": 1},
		Headers: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	if err := w.Validate(ok); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*outbox.Event)
		field string
	}{
		{"no type", func(e *outbox.Event) { e.Type = "" }, "Type"},
		{"no source", func(e *outbox.Event) { e.Source = "" }, "Source"},
		{"source with space", func(e *outbox.Event) { e.Source = "my orders" }, "Source"},
		{"relative dataschema", func(e *outbox.Event) { e.DataSchema = "/schemas/order.json" }, "DataSchema"},
		{"bad media type", func(e *outbox.Event) { e.DataContentType = "json" }, "DataContentType"},
		{"bad JSON", func(e *outbox.Event) { e.Data = []byte(`{"a":1,"a":2}`) }, "Data"},
		{"upper-case header", func(e *outbox.Event) { e.Headers = map[string]string{"Tenant": "x"} }, "Headers"},
		{"reserved header", func(e *outbox.Event) { e.Headers = map[string]string{"partitionkey": "x"} }, "Headers"},
		{"no subject column", func(e *outbox.Event) { e.Subject = "s" }, "Subject"},
	} {
		e := ok
		tc.edit(&e)
		err := w.Validate(e)
		var oe *outbox.Error
		if !errors.As(err, &oe) || oe.Field != tc.field {
			t.Errorf("%s: %v, want an *outbox.Error on %s", tc.name, err, tc.field)
		}
	}
}
