package file

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// BenchmarkEncode measures the file sink's encode path, one op per event:
// the event as a CloudEvents JSON line, written to io.Discard. It does not
// allocate.
func BenchmarkEncode(b *testing.B) {
	evs := make([]*event.Event, 1024)
	for i := range evs {
		agg := fmt.Sprintf("order-%d", i%100)
		evs[i] = &event.Event{
			ID:              fmt.Sprintf("evt-%09d", i),
			Source:          "/pg/shop/public.outbox",
			Type:            "order.updated",
			Time:            time.Date(2026, 11, 27, 8, 21, 12, 123456000, time.UTC),
			DataContentType: "application/json",
			DataKind:        event.DataJSON,
			Data: fmt.Appendf(nil, `{"order_id":%q,"customer":"c-%d","status":"paid","total":{"amount":%d,"currency":"EUR"},`+
				`"lines":[{"sku":"sku-1","qty":2},{"sku":"sku-2","qty":1}],"note":"benchmark payload padding........"}`, agg, i%77, i),
			AggregateType: "orders",
			AggregateID:   agg,
			Extensions:    []event.Extension{{Name: "partitionkey", Value: agg}, {Name: "pglsn", Value: fmt.Sprintf("0/%X", 0x16B0000+i*64)}},
		}
	}
	s := NewWriter("bench", io.Discard)
	defer s.Close()
	ctx := context.Background()
	one := make([]*event.Event, 1)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		one[0] = evs[i&1023]
		if err := s.Publish(ctx, one); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
