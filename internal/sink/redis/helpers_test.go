package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	goredis "github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
)

// stats returns the acknowledgements, duplicates and retries rec saw.
func stats(rec *sinktest.Recorder) (acks, dups, retried int) {
	retried, _ = rec.Retries()
	return rec.Acks(), rec.Duplicates(), retried
}

// newSink starts a sink against srv with cfg (Address filled in), reporting
// to rec and logging to logs (either may be nil).
func newSink(t testing.TB, srv *testServer, cfg Config, rec *sinktest.Recorder, logs *sinktest.Log) *Sink {
	t.Helper()
	if cfg.Address == "" {
		cfg.Address = srv.addr()
	}
	var logger *slog.Logger
	if logs != nil {
		logger = logs.Logger(slog.LevelDebug)
	}
	s, err := New(context.Background(), cfg, sinktest.Options("test", rec, logger))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// makeEvents returns n test events (sinktest.Events) spread round-robin
// over aggregates "agg-0".."agg-<aggs-1>", whose aggregate type is
// aggTypes[id % len(aggTypes)]. prefix makes the ids unique per test.
func makeEvents(prefix string, n, aggs int, aggTypes []string) []*event.Event {
	return sinktest.Events{Prefix: prefix, Keys: sinktest.Keys(aggs), Types: aggTypes}.Make(0, n)
}

// entry is one stream entry with its fields in stored order.
type entry struct {
	id     string
	fields []string // name, value, name, value, ...
}

func (e entry) get(name string) (string, bool) {
	for i := 0; i+1 < len(e.fields); i += 2 {
		if e.fields[i] == name {
			return e.fields[i+1], true
		}
	}
	return "", false
}

// readStream returns every entry of stream via XRANGE, keeping field order.
func readStream(t testing.TB, c *goredis.Client, stream string) []entry {
	t.Helper()
	v, err := c.Do(context.Background(), "XRANGE", stream, "-", "+").Slice()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", stream, err)
	}
	out := make([]entry, 0, len(v))
	for _, x := range v {
		pair := x.([]any)
		en := entry{id: pair[0].(string)}
		for _, f := range pair[1].([]any) {
			en.fields = append(en.fields, f.(string))
		}
		out = append(out, en)
	}
	return out
}

// decodeBinary decodes an entry of the binary layout into a CloudEvents SDK
// event by hand, the way any consumer would: specversion must come first,
// known attributes by name, "data" as the raw data, everything else an
// extension.
func decodeBinary(en entry) (ce.Event, error) {
	if len(en.fields) < 2 || en.fields[0] != FieldSpecVersion {
		return ce.Event{}, fmt.Errorf("entry %s: first field is not specversion: %q", en.id, en.fields)
	}
	ev := ce.New(en.fields[1])
	for i := 2; i+1 < len(en.fields); i += 2 {
		name, value := en.fields[i], en.fields[i+1]
		switch name {
		case FieldID:
			ev.SetID(value)
		case FieldSource:
			ev.SetSource(value)
		case FieldType:
			ev.SetType(value)
		case FieldSubject:
			ev.SetSubject(value)
		case FieldTime:
			tm, err := types.ParseTime(value)
			if err != nil {
				return ev, err
			}
			ev.SetTime(tm)
		case FieldDataContentType:
			ev.SetDataContentType(value)
		case FieldDataSchema:
			ev.SetDataSchema(value)
		case FieldData:
			ev.DataEncoded = []byte(value)
		default:
			ev.SetExtension(name, value)
		}
	}
	return ev, ev.Validate()
}

// decodeStructured decodes an entry of the structured layout with the SDK's
// JSON format.
func decodeStructured(en entry) (ce.Event, error) {
	if len(en.fields) != 2 || en.fields[0] != FieldEvent {
		return ce.Event{}, fmt.Errorf("entry %s: want one field %q, got %q", en.id, FieldEvent, en.fields)
	}
	var ev ce.Event
	if err := json.Unmarshal([]byte(en.fields[1]), &ev); err != nil {
		return ev, err
	}
	return ev, ev.Validate()
}

// compareEvent reports how got differs from want.
func compareEvent(want *event.Event, got ce.Event, structured bool) []string {
	var diffs []string
	check := func(name, w, g string) {
		if w != g {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want %q", name, g, w))
		}
	}
	check("specversion", "1.0", got.SpecVersion())
	check("id", want.ID, got.ID())
	check("source", want.Source, got.Source())
	check("type", want.Type, got.Type())
	check("subject", want.Subject, got.Subject())
	check("datacontenttype", want.DataContentType, got.DataContentType())
	check("dataschema", want.DataSchema, got.DataSchema())
	if !got.Time().Equal(want.Time.Truncate(time.Microsecond)) {
		diffs = append(diffs, fmt.Sprintf("time: got %v, want %v", got.Time(), want.Time))
	}
	exts := got.Extensions()
	if len(exts) != len(want.Extensions) {
		diffs = append(diffs, fmt.Sprintf("extensions: got %v, want %v", exts, want.Extensions))
	}
	for _, x := range want.Extensions {
		v, err := types.ToString(exts[x.Name])
		if err != nil || v != x.Value {
			diffs = append(diffs, fmt.Sprintf("extension %s: got %v, want %q", x.Name, exts[x.Name], x.Value))
		}
	}
	data := got.Data()
	wantData := want.Data
	if structured && want.DataKind == event.DataText {
		// The JSON format carries text as a JSON string; the SDK keeps the
		// JSON token.
		var s string
		if err := json.Unmarshal(data, &s); err == nil {
			data = []byte(s)
		}
	}
	if want.DataKind == event.DataNone {
		wantData = nil
	}
	if !bytes.Equal(data, wantData) {
		diffs = append(diffs, fmt.Sprintf("data: got %q, want %q", data, wantData))
	}
	return diffs
}

func flush(t testing.TB, s *Sink, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// streamsOf returns the stream name of every aggregate type with prefix.
func streamFor(prefix, aggType string) string { return prefix + aggType }
