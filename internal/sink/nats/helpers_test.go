package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// startNATS starts a nats-server with JetStream through the test harness and
// closes it when the test ends.
func startNATS(t testing.TB, opts harness.NATSOptions) *harness.NATS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, err := harness.StartNATS(ctx, opts)
	harness.SkipIfNotInstalled(t, "nats", err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nats-server log:\n%s", srv.LogTail(40))
		}
		srv.Close()
	})
	return srv
}

// recorder is the sink's Observer and the events' Tracker: it counts
// acknowledgements per event (to catch double acks), duplicates and
// retries, and records the order of acknowledgements.
type recorder struct {
	mu     sync.Mutex
	acks   map[string]int
	order  []string
	done   atomic.Int64
	dups   atomic.Int64
	retr   atomic.Int64
	other  atomic.Int64 // duplicates from another commit
	stored []uint64     // their stored LSNs, under mu
	notify chan struct{}
}

func newRecorder() *recorder {
	return &recorder{acks: make(map[string]int), notify: make(chan struct{}, 1)}
}

func (r *recorder) Acked(_ string, e *event.Event) {
	r.mu.Lock()
	r.acks[e.ID]++
	r.order = append(r.order, e.ID)
	r.mu.Unlock()
}
func (r *recorder) Retried(string, error)          { r.retr.Add(1) }
func (r *recorder) Duplicate(string, *event.Event) { r.dups.Add(1) }

// DuplicateOtherCommit implements sink.OtherCommitObserver.
func (r *recorder) DuplicateOtherCommit(_ string, _ *event.Event, storedLSN uint64) {
	r.mu.Lock()
	r.stored = append(r.stored, storedLSN)
	r.mu.Unlock()
	r.other.Add(1)
}

func (r *recorder) otherLSNs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.stored...)
}
func (r *recorder) Done(*event.Event) {
	r.done.Add(1)
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) acked(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.acks[id]
}

// checkAcked fails unless exactly the events in evs were acknowledged, each
// once, in the order given.
func (r *recorder) checkAcked(t *testing.T, evs []*event.Event) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.order) != len(evs) {
		t.Fatalf("%d acknowledgements, want %d", len(r.order), len(evs))
	}
	for i, e := range evs {
		if n := r.acks[e.ID]; n != 1 {
			t.Fatalf("event %s acknowledged %d times", e.ID, n)
		}
		if r.order[i] != e.ID {
			t.Fatalf("acknowledgement %d is %s, want %s", i, r.order[i], e.ID)
		}
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// logBuffer collects log lines for tests that check them.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newSink(t testing.TB, cfg Config, rec *recorder) *Sink {
	t.Helper()
	return newSinkLog(t, cfg, rec, testLogger(t))
}

func newSinkLog(t testing.TB, cfg Config, rec *recorder, log *slog.Logger) *Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := sink.Options{Name: "t1", Logger: log}
	if rec != nil {
		opts.Observer = rec
	}
	s, err := New(ctx, cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var testBaseTime = time.Date(2026, 3, 4, 5, 6, 7, 891011000, time.UTC)

// makeEvents returns events from..to-1 spread over aggregates aggregates of
// two aggregate types, with every data kind and attributes that need
// percent-encoding. Each is tracked by rec.
func makeEvents(rec *recorder, from, to, aggregates int) []*event.Event {
	evs := make([]*event.Event, 0, to-from)
	for i := from; i < to; i++ {
		agg := fmt.Sprintf("agg-%d", i%aggregates)
		typ := "orders"
		if i%aggregates%2 == 1 {
			typ = "users"
		}
		e := &event.Event{
			ID:            fmt.Sprintf("evt-%07d", i),
			Source:        "/pg/app/public.outbox",
			Type:          typ + ".changed",
			Time:          testBaseTime.Add(time.Duration(i) * time.Millisecond),
			AggregateType: typ,
			AggregateID:   agg,
			Extensions: []event.Extension{
				{Name: "partitionkey", Value: agg},
				{Name: "pglsn", Value: fmt.Sprintf("0/%X", 0x16B0000+i*64)},
			},
		}
		switch i % 5 {
		case 0:
			e.DataKind, e.DataContentType = event.DataJSON, "application/json"
			e.Data = fmt.Appendf(nil, `{"n":%d,"agg":%q}`, i, agg)
		case 1:
			e.DataKind, e.DataContentType = event.DataJSON, ""
			e.Data = fmt.Appendf(nil, `[%d,"x y"]`, i)
			e.Subject = fmt.Sprintf(`order %d: "100%%" caf\u00e9 \u20ac\U0001F600`, i)
		case 2:
			e.DataKind, e.DataContentType = event.DataText, "text/plain; charset=utf-8"
			e.Data = fmt.Appendf(nil, "line %d\nsecond line", i)
			e.Extensions = append(e.Extensions, event.Extension{Name: "tenant", Value: "ACME Corp"})
		case 3:
			e.DataKind, e.DataContentType = event.DataBinary, "application/octet-stream"
			e.Data = []byte{0, 1, 2, 0xff, byte(i)}
			e.DataSchema = "https://example.com/schemas/bin.json"
		case 4:
			e.DataKind = event.DataNone
		}
		e.Size = len(e.Data) + 200
		if rec != nil {
			e.Track(rec, 1)
		}
		evs = append(evs, e)
	}
	return evs
}

// waitAcked waits until rec has seen n events done.
func waitAcked(t *testing.T, rec *recorder, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for rec.done.Load() < n {
		select {
		case <-rec.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d of %d events acknowledged after %v", rec.done.Load(), n, timeout)
		}
	}
}

// readStream reads every message of the stream with an independent
// connection and a pull consumer, in stream order.
func readStream(t *testing.T, url, stream string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("consumer connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := int(info.State.Msgs)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	var msgs []jetstream.Msg
	for len(msgs) < want {
		batch, err := cons.Fetch(min(1000, want-len(msgs)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		n := len(msgs)
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if len(msgs) == n {
			t.Fatalf("read %d of %d messages, then nothing", n, want)
		}
	}
	return msgs
}

// decode turns a message back into a CloudEvent following the NATS protocol
// binding: structured when content-type starts with
// application/cloudevents, else binary with every attribute in a ce- header
// (percent-decoded by hand, the SDK's NATS binding is a separate module).
// The result is validated by the CloudEvents SDK.
func decode(m jetstream.Msg) (cloudevents.Event, error) {
	h := m.Headers()
	var ct string
	for k, vs := range h {
		if strings.EqualFold(k, "content-type") {
			ct = vs[0]
		}
	}
	if strings.HasPrefix(strings.ToLower(ct), "application/cloudevents") {
		var ev cloudevents.Event
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			return ev, fmt.Errorf("structured payload: %w", err)
		}
		return ev, ev.Validate()
	}
	ev := cloudevents.New()
	var sawVersion bool
	for k, vs := range h {
		lk := strings.ToLower(k)
		name, ok := strings.CutPrefix(lk, "ce-")
		if !ok {
			continue
		}
		if len(vs) != 1 {
			return ev, fmt.Errorf("header %s has %d values", k, len(vs))
		}
		v, ok := pctDecode(vs[0])
		if !ok {
			return ev, fmt.Errorf("header %s: bad percent-encoding %q", k, vs[0])
		}
		switch name {
		case "specversion":
			if v != "1.0" {
				return ev, fmt.Errorf("specversion %q", v)
			}
			sawVersion = true
		case "id":
			ev.SetID(v)
		case "source":
			ev.SetSource(v)
		case "type":
			ev.SetType(v)
		case "subject":
			ev.SetSubject(v)
		case "time":
			tm, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return ev, fmt.Errorf("ce-time %q: %w", v, err)
			}
			ev.SetTime(tm)
		case "datacontenttype":
			ev.SetDataContentType(v)
		case "dataschema":
			ev.SetDataSchema(v)
		default:
			ev.SetExtension(name, v)
		}
	}
	if !sawVersion {
		return ev, fmt.Errorf("no ce-specversion header")
	}
	if len(m.Data()) > 0 {
		ev.DataEncoded = m.Data()
	}
	return ev, ev.Validate()
}

// checkEvent compares a decoded CloudEvent with the event it came from.
func checkEvent(t *testing.T, got cloudevents.Event, want *event.Event) {
	t.Helper()
	errf := func(attr string, g, w any) { t.Errorf("event %s: %s = %v, want %v", want.ID, attr, g, w) }
	if got.SpecVersion() != "1.0" {
		errf("specversion", got.SpecVersion(), "1.0")
	}
	if got.ID() != want.ID {
		errf("id", got.ID(), want.ID)
	}
	if got.Source() != want.Source {
		errf("source", got.Source(), want.Source)
	}
	if got.Type() != want.Type {
		errf("type", got.Type(), want.Type)
	}
	if got.Subject() != want.Subject {
		errf("subject", got.Subject(), want.Subject)
	}
	if !got.Time().Equal(want.Time) {
		errf("time", got.Time(), want.Time)
	}
	if got.DataContentType() != want.DataContentType {
		errf("datacontenttype", got.DataContentType(), want.DataContentType)
	}
	if got.DataSchema() != want.DataSchema {
		errf("dataschema", got.DataSchema(), want.DataSchema)
	}
	exts := got.Extensions()
	if len(exts) != len(want.Extensions) {
		errf("extensions", exts, want.Extensions)
	}
	for _, x := range want.Extensions {
		if v := fmt.Sprint(exts[x.Name]); v != x.Value {
			errf(x.Name, v, x.Value)
		}
	}
	data := got.Data()
	wantData := want.Data
	if want.DataKind == event.DataNone {
		wantData = nil
	}
	if want.DataKind == event.DataText && len(data) > 0 && data[0] == '"' {
		// The SDK keeps a JSON string of the structured format quoted.
		var s string
		if err := json.Unmarshal(data, &s); err == nil {
			data = []byte(s)
		}
	}
	if !bytes.Equal(data, wantData) {
		errf("data", string(data), string(wantData))
	}
}

// validateSchema checks a CloudEvent in the JSON format against the
// CloudEvents 1.0 JSON schema (see sinktest.ValidateJSON).
func validateSchema(t *testing.T, raw []byte) {
	t.Helper()
	if err := sinktest.ValidateJSON(t, raw); err != nil {
		t.Fatalf("%s does not match the CloudEvents schema: %v", raw, err)
	}
}

// checkStream reads the stream and checks that it holds exactly evs, in
// order, each once, with every attribute intact.
func checkStream(t *testing.T, url, stream string, evs []*event.Event) []jetstream.Msg {
	t.Helper()
	msgs := readStream(t, url, stream)
	byID := make(map[string]*event.Event, len(evs))
	for _, e := range evs {
		byID[e.ID] = e
	}
	seen := make(map[string]int)
	lastOfKey := make(map[string]string)
	for i, m := range msgs {
		ev, err := decode(m)
		if err != nil {
			t.Fatalf("message %d (%s): %v", i, m.Subject(), err)
		}
		want, ok := byID[ev.ID()]
		if !ok {
			t.Fatalf("message %d: unknown event %q", i, ev.ID())
		}
		seen[ev.ID()]++
		if seen[ev.ID()] > 1 {
			t.Fatalf("event %s stored %d times", ev.ID(), seen[ev.ID()])
		}
		if m.Headers().Get("Nats-Msg-Id") != want.DedupKey() {
			t.Errorf("event %s: Nats-Msg-Id %q", want.ID, m.Headers().Get("Nats-Msg-Id"))
		}
		if wantSubj := "outbox." + want.AggregateType; m.Subject() != wantSubj {
			t.Errorf("event %s: subject %q, want %q", want.ID, m.Subject(), wantSubj)
		}
		checkEvent(t, ev, want)
		if strings.HasPrefix(m.Headers().Get("content-type"), "application/cloudevents") {
			validateSchema(t, m.Data())
		} else if raw, err := json.Marshal(ev); err != nil {
			t.Fatalf("event %s: %v", want.ID, err)
		} else {
			validateSchema(t, raw) // the event the binary message carries
		}
		// Per-key order: every event of a key comes after the one before.
		key := want.PartitionKey()
		if prev := lastOfKey[key]; prev > want.ID {
			t.Fatalf("key %s: event %s stored after %s", key, want.ID, prev)
		}
		lastOfKey[key] = want.ID
		if i < len(evs) && evs[i].ID != want.ID {
			t.Fatalf("stream position %d holds %s, want %s (stream order differs from publish order)", i, want.ID, evs[i].ID)
		}
	}
	if len(msgs) != len(evs) {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), len(evs))
	}
	return msgs
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// proxy is a TCP proxy to a server whose connections can be cut and whose
// server-to-client direction can be held, to lose acknowledgements while
// the messages still reach the server.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	held   bool
	cond   *sync.Cond
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.hold(false)
	})
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { io.Copy(s, c); s.Close(); c.Close() }()
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				// Bytes read while held wait for the release.
				p.mu.Lock()
				for p.held {
					p.cond.Wait()
				}
				p.mu.Unlock()
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			s.Close()
			c.Close()
		}()
	}
}

// hold stops (true) or resumes (false) forwarding server-to-client bytes.
func (p *proxy) hold(on bool) {
	p.mu.Lock()
	p.held = on
	p.mu.Unlock()
	p.cond.Broadcast()
}

// cut closes every proxied connection.
func (p *proxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
