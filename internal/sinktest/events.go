package sinktest

import (
	"fmt"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// BaseTime is the time of event number 0 from Events; event i is i
// milliseconds later. It has microsecond precision, as CloudEvents times
// written by outbox-cdc do.
var BaseTime = time.Date(2026, 3, 4, 5, 6, 7, 891011000, time.UTC)

// BaseLSN is the commit LSN of event number 0; event i's is BaseLSN + 64·i.
const BaseLSN = 0x16B3748

// Events says what test events to make. The zero value makes events with
// ids "evt-0000000"..., one aggregate "agg-0" of type "orders".
type Events struct {
	// Prefix starts every id: Prefix + "-" + the event's number in seven
	// digits, so ids sort in number order. Default "evt".
	Prefix string
	// Source is every event's source. Default "/outbox-cdc/test/public.outbox".
	Source string
	// Keys are the aggregate ids (partition keys), used round robin: event
	// i has Keys[i % len(Keys)]. Default Keys(1).
	Keys []string
	// Types are the aggregate types: the event of Keys[k] has
	// Types[k % len(Types)], and type Types[...] + ".changed". Default
	// {"orders"}.
	Types []string
}

// Keys returns n aggregate ids, "agg-0" to "agg-<n-1>".
func Keys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("agg-%d", i)
	}
	return keys
}

// Make returns events numbered from to to-1, new each call. They cycle
// through every data kind and optional attribute: JSON with and without a
// content type, text, binary, no data; a subject and a tenant extension
// that need escaping in headers; a data schema; a traceparent. Each has a
// commit LSN (and the pglsn extension) growing with its number, Seq = its
// number, partitionkey = its aggregate id, and Size = len(Data) + 200.
func (s Events) Make(from, to int) []*event.Event {
	prefix, source, keys, types := s.Prefix, s.Source, s.Keys, s.Types
	if prefix == "" {
		prefix = "evt"
	}
	if source == "" {
		source = "/outbox-cdc/test/public.outbox"
	}
	if len(keys) == 0 {
		keys = Keys(1)
	}
	if len(types) == 0 {
		types = []string{"orders"}
	}
	evs := make([]*event.Event, 0, max(0, to-from))
	for i := from; i < to; i++ {
		k := i % len(keys)
		agg, typ := keys[k], types[k%len(types)]
		lsn := uint64(BaseLSN + 64*i)
		e := &event.Event{
			ID:            fmt.Sprintf("%s-%07d", prefix, i),
			Source:        source,
			Type:          typ + ".changed",
			Time:          BaseTime.Add(time.Duration(i) * time.Millisecond),
			AggregateType: typ,
			AggregateID:   agg,
			CommitLSN:     lsn,
			Seq:           i,
			Extensions: []event.Extension{
				{Name: "partitionkey", Value: agg},
				{Name: "pglsn", Value: event.FormatLSN(lsn)},
			},
		}
		switch i % 5 {
		case 0:
			e.DataKind, e.DataContentType = event.DataJSON, "application/json"
			e.Data = fmt.Appendf(nil, `{"n":%d,"agg":%q,"note":"caf\u00e9 \"q\""}`, i, agg)
		case 1:
			e.DataKind = event.DataJSON // no content type: JSON by default
			e.Data = fmt.Appendf(nil, `[%d,"x y"]`, i)
			e.Subject = fmt.Sprintf("order %d: \"100%%\" caf\u00e9 \u20ac\U0001F600", i)
		case 2:
			e.DataKind, e.DataContentType = event.DataText, "text/plain; charset=utf-8"
			e.Data = fmt.Appendf(nil, "line %d\nsecond line\t\"quoted\"", i)
			e.Extensions = append(e.Extensions, event.Extension{Name: "tenant", Value: "ACME Corp"})
		case 3:
			e.DataKind, e.DataContentType = event.DataBinary, "application/octet-stream"
			e.Data = []byte{0, 1, 2, 0xff, 0xfe, byte(i), '\n', 0}
			e.DataSchema = "https://example.com/schemas/bin.json"
		case 4:
			e.DataKind = event.DataNone
			e.Extensions = append(e.Extensions, event.Extension{Name: "traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
		}
		e.Size = len(e.Data) + 200
		evs = append(evs, e)
	}
	return evs
}

// Copy returns fresh copies of evs, as the decoder makes them again after a
// restart: same fields, no acknowledgement state.
func Copy(evs []*event.Event) []*event.Event {
	out := make([]*event.Event, len(evs))
	for i, e := range evs {
		out[i] = &event.Event{
			ID: e.ID, Source: e.Source, Type: e.Type, Subject: e.Subject,
			DataContentType: e.DataContentType, DataSchema: e.DataSchema, Time: e.Time,
			Extensions: e.Extensions, Data: e.Data, DataKind: e.DataKind,
			AggregateType: e.AggregateType, AggregateID: e.AggregateID,
			Table: e.Table, CommitLSN: e.CommitLSN, CommitTime: e.CommitTime, Seq: e.Seq, Size: e.Size,
		}
	}
	return out
}
