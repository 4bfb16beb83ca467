package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ce "github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	goredis "github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/acktest"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// observer counts acknowledgements per event id (to catch double acks),
// duplicates and retries.
type observer struct {
	mu      sync.Mutex
	acked   map[string]int
	order   []string // ids in acknowledgement order
	dups    int
	retried int
	lastErr error
	stored  []uint64 // stored LSNs of duplicates from another commit
}

func newObserver() *observer { return &observer{acked: make(map[string]int)} }

func (o *observer) Acked(_ string, e *event.Event) {
	o.mu.Lock()
	o.acked[e.ID]++
	o.order = append(o.order, e.ID)
	o.mu.Unlock()
}

func (o *observer) Retried(_ string, err error) {
	o.mu.Lock()
	o.retried++
	o.lastErr = err
	o.mu.Unlock()
}

func (o *observer) Duplicate(string, *event.Event) {
	o.mu.Lock()
	o.dups++
	o.mu.Unlock()
}

// DuplicateOtherCommit implements sink.OtherCommitObserver.
func (o *observer) DuplicateOtherCommit(_ string, _ *event.Event, storedLSN uint64) {
	o.mu.Lock()
	o.stored = append(o.stored, storedLSN)
	o.mu.Unlock()
}

func (o *observer) otherCount() int { return len(o.otherLSNs()) }

func (o *observer) otherLSNs() []uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]uint64(nil), o.stored...)
}

func (o *observer) ackCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.order)
}

func (o *observer) stats() (acks, dups, retried int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.order), o.dups, o.retried
}

// checkAckedOnce fails unless exactly the events evs were acknowledged, each
// once.
func (o *observer) checkAckedOnce(t *testing.T, evs []*event.Event) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range evs {
		if n := o.acked[e.ID]; n != 1 {
			t.Errorf("event %s acknowledged %d times, want 1", e.ID, n)
		}
	}
	if len(o.acked) != len(evs) {
		t.Errorf("%d distinct events acknowledged, want %d", len(o.acked), len(evs))
	}
}

// tracker records the events whose acknowledgements are all in.
type tracker struct {
	mu   sync.Mutex
	done map[*event.Event]int
}

func (tr *tracker) Done(e *event.Event) {
	tr.mu.Lock()
	tr.done[e]++
	tr.mu.Unlock()
}

// logBuffer collects log lines for assertions on state-change logging.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newSink starts a sink against srv with cfg (Address filled in).
func newSink(t testing.TB, srv *testServer, cfg Config, obs sink.Observer, logs *logBuffer) *Sink {
	t.Helper()
	if cfg.Address == "" {
		cfg.Address = srv.addr()
	}
	opts := sink.Options{Name: "test", Observer: obs}
	if logs != nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(context.Background(), cfg, acktest.Handle(opts))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// makeEvents returns n events spread round-robin over aggregates ids
// "agg-0".."agg-<aggs-1>", whose aggregate type is types[id % len(types)],
// with every data kind and optional attribute represented. prefix makes the
// ids unique per test.
func makeEvents(prefix string, n, aggs int, aggTypes []string) []*event.Event {
	base := time.Date(2026, 3, 4, 5, 6, 7, 891234000, time.UTC)
	evs := make([]*event.Event, n)
	for i := range n {
		a := i % aggs
		aggID := "agg-" + strconv.Itoa(a)
		e := &event.Event{
			ID:            fmt.Sprintf("%s-%06d", prefix, i),
			Source:        "/outbox-cdc/testdb/public.outbox",
			Type:          "order.updated",
			Time:          base.Add(time.Duration(i) * time.Millisecond),
			AggregateType: aggTypes[a%len(aggTypes)],
			AggregateID:   aggID,
			CommitLSN:     uint64(0x16B3748 + i*64),
			Seq:           i % 3,
			Extensions: []event.Extension{
				{Name: "partitionkey", Value: aggID},
				{Name: "pglsn", Value: fmt.Sprintf("0/%X", 0x16B3748+i*64)},
			},
		}
		switch i % 4 {
		case 0:
			e.DataContentType = "application/json"
			e.Data = []byte(fmt.Sprintf(`{"n":%d,"agg":%q,"note":"caf\u00e9 \"q\""}`, i, aggID))
			e.DataKind = event.DataJSON
			e.Subject = "orders/" + aggID
		case 1:
			e.DataContentType = "text/plain; charset=utf-8"
			e.Data = []byte(fmt.Sprintf("line one %d\nline two\t\"quoted\"", i))
			e.DataKind = event.DataText
			e.DataSchema = "https://example.com/schemas/text"
		case 2:
			e.DataContentType = "application/octet-stream"
			e.Data = []byte{0, 1, 2, 0xff, 0xfe, byte(i), '\n', 0}
			e.DataKind = event.DataBinary
		case 3:
			e.DataKind = event.DataNone
			e.Extensions = append(e.Extensions, event.Extension{Name: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
		}
		evs[i] = e
	}
	return evs
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
