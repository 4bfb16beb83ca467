package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
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

// retries returns the failed attempts rec saw.
func retries(rec *sinktest.Recorder) int64 {
	n, _ := rec.Retries()
	return int64(n)
}

func newSink(t testing.TB, cfg Config, rec *sinktest.Recorder) *Sink {
	t.Helper()
	return newSinkLog(t, cfg, rec, sinktest.Logger())
}

func newSinkLog(t testing.TB, cfg Config, rec *sinktest.Recorder, log *slog.Logger) *Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, cfg, sinktest.Options("t1", rec, log))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var testBaseTime = time.Date(2026, 3, 4, 5, 6, 7, 891011000, time.UTC)

// makeEvents returns test events (sinktest.Events) from..to-1 spread over
// aggregates aggregates of two aggregate types, "orders" and "users", with
// every data kind and attributes that need percent-encoding.
func makeEvents(from, to, aggregates int) []*event.Event {
	return sinktest.Events{Keys: sinktest.Keys(aggregates), Types: []string{"orders", "users"}}.Make(from, to)
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
