package sink_test

import (
	"fmt"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// A route selects events by CloudEvents type and by aggregate type, with
// shell globs; an empty list matches everything.
func ExampleRoute() {
	r := sink.Route{Types: []string{"order.*"}, AggregateTypes: []string{"order", "invoice"}}
	if err := r.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range []*event.Event{
		{Type: "order.created", AggregateType: "order"},
		{Type: "order.paid", AggregateType: "invoice"},
		{Type: "customer.created", AggregateType: "customer"},
		{Type: "order.shipped", AggregateType: "shipment"},
	} {
		fmt.Println(e.Type, e.AggregateType, r.Match(e))
	}
	// Output:
	// order.created order true
	// order.paid invoice true
	// customer.created customer false
	// order.shipped shipment false
}
