package kafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	cev "github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// TestRoundTrip publishes events of several aggregates and reads them back
// with an independent consumer group, checking every header against the
// CloudEvents Kafka protocol binding (decoded by hand, then validated and
// compared through the CloudEvents SDK's event type), per-key order,
// exactly-once acknowledgement, and a quiet log on a healthy broker.
func TestRoundTrip(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *cluster) {
		for _, tc := range []struct {
			mode, compression string
		}{
			{ModeBinary, ""},
			{ModeStructured, ""},
			{ModeBinary, "zstd"},
			{ModeStructured, "none"},
			{ModeBinary, "gzip"},
			{ModeBinary, "snappy"},
		} {
			t.Run(tc.mode+"-"+tc.compression, func(t *testing.T) {
				topic := c.createTopic(t, 3, nil)
				cfg := c.config(topic)
				cfg.ContentMode, cfg.Compression = tc.mode, tc.compression
				opts, rec, logs := testOptions(t)
				s := newSink(t, cfg, opts)
				aggs := []string{"order-1", "order-2", "order-3", "order-4", "order-5", "order-6", "order-7"}
				evs := makeEvents(700, "order", aggs)
				for i := 0; i < len(evs); i += 11 {
					evs[i].AggregateID = "" // unordered events keyed by their id
					evs[i].Extensions[0].Value = evs[i].ID
				}
				publishAll(t, s, evs, 37)
				rec.CheckEach(t, evs)
				if got := int64(rec.Acks()); got != int64(len(evs)) {
					t.Fatalf("observer saw %d acks, want %d", got, len(evs))
				}

				recs := c.consume(t, len(evs), true, topic)
				checkRecords(t, recs, evs, tc.mode == ModeStructured)
				if n := logs.Count("level="); n != 1 || logs.Count("kafka sink connected") != 1 {
					t.Fatalf("want only the connected line in the log:\n%s", logs)
				}
				if retries(rec) != 0 {
					t.Fatalf("%d retries on a healthy broker", retries(rec))
				}
			})
		}
	})
}

// checkRecords matches records to events by id, checks each one's encoding
// and that every key's records are in one partition in publish order.
func checkRecords(t *testing.T, recs []*kgo.Record, evs []*event.Event, structured bool) {
	t.Helper()
	byID := make(map[string]*event.Event, len(evs))
	for _, e := range evs {
		byID[e.ID] = e
	}
	gotOrder := map[string][]string{}
	partOf := map[string]int32{}
	for _, r := range recs {
		var ce cev.Event
		if structured {
			ce = decodeStructured(t, r)
		} else {
			ce = decodeBinary(t, r)
		}
		e := byID[ce.ID()]
		if e == nil {
			t.Fatalf("record with unknown id %q", ce.ID())
		}
		checkEvent(t, ce, e, structured)
		if string(r.Key) != e.PartitionKey() {
			t.Fatalf("event %s: key %q, want %q", e.ID, r.Key, e.PartitionKey())
		}
		key := string(r.Key)
		if p, ok := partOf[key]; ok && p != r.Partition {
			t.Fatalf("key %s in partitions %d and %d", key, p, r.Partition)
		}
		partOf[key] = r.Partition
		gotOrder[key] = append(gotOrder[key], e.ID)
	}
	// Records of one partition are consumed in offset order, so each key's
	// ids must appear as they were published.
	wantOrder := map[string][]string{}
	for _, e := range evs {
		wantOrder[e.PartitionKey()] = append(wantOrder[e.PartitionKey()], e.ID)
	}
	for k, want := range wantOrder {
		if got := gotOrder[k]; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("key %s: order\n got %v\nwant %v", k, got, want)
		}
	}
}

// decodeBinary decodes a binary-mode record by hand, following the Kafka
// protocol binding 1.0 (section 3.2), into a CloudEvents SDK event and
// validates it with the SDK.
func decodeBinary(t *testing.T, r *kgo.Record) cev.Event {
	t.Helper()
	ce := cev.New(cev.CloudEventsVersionV1)
	seen := map[string]bool{}
	for _, h := range r.Headers {
		if seen[h.Key] {
			t.Fatalf("header %s twice", h.Key)
		}
		seen[h.Key] = true
		if !utf8.Valid(h.Value) || !utf8.ValidString(h.Key) {
			t.Fatalf("header %s is not UTF-8", h.Key)
		}
		v := string(h.Value)
		switch h.Key {
		case "content-type":
			ce.SetDataContentType(v)
		case "ce_specversion":
			if v != "1.0" {
				t.Fatalf("ce_specversion %q", v)
			}
		case "ce_id":
			ce.SetID(v)
		case "ce_source":
			ce.SetSource(v)
		case "ce_type":
			ce.SetType(v)
		case "ce_subject":
			ce.SetSubject(v)
		case "ce_dataschema":
			ce.SetDataSchema(v)
		case "ce_time":
			tm, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				t.Fatalf("ce_time %q: %v", v, err)
			}
			ce.SetTime(tm)
		default:
			name, ok := strings.CutPrefix(h.Key, "ce_")
			if !ok {
				t.Fatalf("header %q is neither content-type nor ce_*", h.Key)
			}
			ce.SetExtension(name, v)
		}
	}
	for _, k := range []string{"ce_specversion", "ce_id", "ce_source", "ce_type"} {
		if !seen[k] {
			t.Fatalf("required header %s missing", k)
		}
	}
	if r.Value != nil {
		ce.DataEncoded = r.Value
	}
	if err := ce.Validate(); err != nil {
		t.Fatalf("SDK rejects event: %v", err)
	}
	return ce
}

// decodeStructured checks the structured-mode record: one content-type
// header with the CloudEvents JSON media type, and a value the SDK accepts.
func decodeStructured(t *testing.T, r *kgo.Record) cev.Event {
	t.Helper()
	if len(r.Headers) != 1 || r.Headers[0].Key != "content-type" || string(r.Headers[0].Value) != "application/cloudevents+json" {
		t.Fatalf("structured headers %v", r.Headers)
	}
	var ce cev.Event
	if err := json.Unmarshal(r.Value, &ce); err != nil {
		t.Fatalf("value is not CloudEvents JSON: %v\n%s", err, r.Value)
	}
	if err := ce.Validate(); err != nil {
		t.Fatalf("SDK rejects event: %v", err)
	}
	return ce
}

// checkEvent compares every attribute and the data.
func checkEvent(t *testing.T, ce cev.Event, e *event.Event, structured bool) {
	t.Helper()
	fail := func(what string, got, want any) { t.Fatalf("event %s: %s = %v, want %v", e.ID, what, got, want) }
	if ce.SpecVersion() != "1.0" {
		fail("specversion", ce.SpecVersion(), "1.0")
	}
	if ce.Source() != e.Source {
		fail("source", ce.Source(), e.Source)
	}
	if ce.Type() != e.Type {
		fail("type", ce.Type(), e.Type)
	}
	if ce.Subject() != e.Subject {
		fail("subject", ce.Subject(), e.Subject)
	}
	if ce.DataSchema() != e.DataSchema {
		fail("dataschema", ce.DataSchema(), e.DataSchema)
	}
	if !ce.Time().Equal(e.Time) {
		fail("time", ce.Time(), e.Time)
	}
	wantCT := e.DataContentType
	if got := ce.DataContentType(); got != wantCT && !(structured && wantCT == "" && got == "application/json") {
		fail("datacontenttype", got, wantCT)
	}
	exts := ce.Extensions()
	if len(exts) != len(e.Extensions) {
		fail("extensions", exts, e.Extensions)
	}
	for _, x := range e.Extensions {
		if got, _ := exts[x.Name].(string); got != x.Value {
			fail("extension "+x.Name, exts[x.Name], x.Value)
		}
	}
	data := ce.Data()
	switch {
	case e.DataKind == event.DataNone:
		if len(data) != 0 {
			fail("data", string(data), "none")
		}
	case structured && e.DataKind == event.DataJSON:
		var got, want any
		if json.Unmarshal(data, &got) != nil || json.Unmarshal(e.Data, &want) != nil {
			fail("data", string(data), string(e.Data))
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if !bytes.Equal(gj, wj) {
			fail("data", string(data), string(e.Data))
		}
	case structured && e.DataKind == event.DataText:
		// The SDK keeps a JSON string as its JSON text.
		var got string
		if err := json.Unmarshal(data, &got); err != nil && !bytes.Equal(data, e.Data) {
			fail("data", string(data), string(e.Data))
		} else if err == nil && got != string(e.Data) {
			fail("data", got, string(e.Data))
		}
	default:
		if !bytes.Equal(data, e.Data) {
			fail("data", data, e.Data)
		}
	}
}

// TestNoDataIsTombstone checks the binding's rule that an event without data
// has no record value in binary mode, and a value in structured mode.
func TestNoDataIsTombstone(t *testing.T) {
	c := newFakeCluster(t)
	for _, mode := range []string{ModeBinary, ModeStructured} {
		topic := c.createTopic(t, 1, nil)
		cfg := c.config(topic)
		cfg.ContentMode = mode
		opts, _, _ := testOptions(t)
		s := newSink(t, cfg, opts)
		e := &event.Event{ID: "x", Source: "/s", Type: "t", AggregateID: "a", DataKind: event.DataNone}
		publishAll(t, s, []*event.Event{e}, 1)
		r := c.consume(t, 1, false, topic)[0]
		if mode == ModeBinary && r.Value != nil {
			t.Fatalf("binary: value %q, want null", r.Value)
		}
		if mode == ModeStructured && len(r.Value) == 0 {
			t.Fatal("structured: empty value")
		}
	}
}

// TestDynamicTopics routes by aggregate type into topics the sink creates
// with the configured partitions, and refuses a missing topic when creation
// is off without poisoning the sink.
func TestDynamicTopics(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *cluster) {
		prefix := uniqueName("outbox-dyn")
		c.deleteAfter(t, prefix+".order", prefix+".invoice")

		cfg := c.config(prefix + ".{{.AggregateType}}")
		cfg.CreateTopics, cfg.Partitions = true, 2
		opts, rec, logs := testOptions(t)
		s := newSink(t, cfg, opts)
		orders := makeEvents(50, "order", []string{"o1", "o2", "o3"})
		invoices := makeEvents(30, "invoice", []string{"i1", "i2"})
		var all []*event.Event
		for i := range 50 {
			all = append(all, orders[i])
			if i < 30 {
				all = append(all, invoices[i])
			}
		}
		publishAll(t, s, all, 16)
		rec.CheckEach(t, all)
		if n := logs.Count("kafka topic created"); n != 2 {
			t.Fatalf("%d topic-created log lines, want 2:\n%s", n, logs)
		}

		ctx := context.Background()
		td, err := c.adm.ListTopics(ctx, prefix+".order", prefix+".invoice")
		if err != nil {
			t.Fatal(err)
		}
		for name, d := range td {
			if len(d.Partitions) != 2 {
				t.Fatalf("topic %s has %d partitions, want 2", name, len(d.Partitions))
			}
		}
		checkRecords(t, c.consume(t, 50, false, prefix+".order"), orders, false)
		checkRecords(t, c.consume(t, 30, false, prefix+".invoice"), invoices, false)

		// Creation off: an event for a missing topic is a permanent error
		// returned at once; the events before it in the call were taken,
		// and the sink keeps working for topics that exist.
		cfg.CreateTopics, cfg.Partitions = false, 0
		s2 := newSink(t, cfg, opts)
		ok := makeEvents(3, "order", []string{"o1"})
		missing := makeEvents(1, "nosuchtype", []string{"x"})
		err = s2.Publish(ctx, []*event.Event{ok[0], ok[1], missing[0], ok[2]})
		var pe *sink.PermanentError
		if !errors.As(err, &pe) || pe.EventID != missing[0].ID || !errors.Is(err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("Publish: %v, want PermanentError for %s wrapping UNKNOWN_TOPIC_OR_PARTITION", err, missing[0].ID)
		}
		if !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "create_topics") {
			t.Fatalf("error does not say what to do: %v", err)
		}
		if err := s2.Publish(ctx, ok[2:]); err != nil {
			t.Fatalf("Publish after a refused event: %v", err)
		}
		if err := s2.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		rec.CheckEach(t, ok)
		if rec.AckCount(missing[0]) != 0 {
			t.Fatal("refused event acknowledged")
		}

		// An invalid topic name from the template is refused locally.
		bad := makeEvents(1, "bad type!", []string{"x"})
		if err := s2.Publish(ctx, bad); !sink.IsPermanent(err) || !errors.Is(err, kerr.InvalidTopicException) {
			t.Fatalf("Publish with invalid topic name: %v", err)
		}
	})
}

// TestStartupErrors checks that New fails, bounded in time, with a message
// naming the problem and what to do.
func TestStartupErrors(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *cluster) {
		dead := deadAddr(t)
		for _, tc := range []struct {
			name   string
			cfg    Config
			within time.Duration
			want   []string
		}{
			{"wrong address", Config{Brokers: []string{dead}, Topic: "t", ConnectTimeout: time.Second}, 5 * time.Second,
				[]string{"sink kafka-test:", "cannot reach kafka brokers", dead, "check brokers"}},
			{"missing topic", Config{Brokers: c.brokers, Topic: uniqueName("missing"), ConnectTimeout: 5 * time.Second}, 10 * time.Second,
				[]string{"sink kafka-test:", "does not exist", "create_topics"}},
			{"invalid config", Config{Topic: "{{.Nope}}"}, time.Second,
				[]string{"sink kafka-test:", "brokers", "Nope"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				opts, rec, logs := testOptions(t)
				start := time.Now()
				s, err := New(context.Background(), tc.cfg, opts)
				if err == nil {
					s.Close()
					t.Fatal("New succeeded")
				}
				if d := time.Since(start); d > tc.within {
					t.Fatalf("New took %s, want under %s", d, tc.within)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Fatalf("error %q does not contain %q", err, w)
					}
				}
				// The error is the report; no retry noise besides it.
				if logs.String() != "" || retries(rec) != 0 {
					t.Fatalf("startup failure logged or counted retries:\n%s", logs)
				}
			})
		}
	})
}

// TestTooLarge covers the three ways an event can be too large: over an
// explicit batch_max_bytes and over the topic's max.message.bytes (both
// refused before producing, the sink staying usable), and over a limit the
// topic got after the sink read it (rejected by the broker, reported from
// Flush and then from every Publish).
func TestTooLarge(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *cluster) {
		big := func(id string, n int) *event.Event {
			e := &event.Event{ID: id, Source: "/s", Type: "t", AggregateID: "agg", DataKind: event.DataBinary,
				Data: randomBytes(n)}
			return e
		}
		ctx := context.Background()

		for _, tc := range []struct {
			name        string
			topicConfig map[string]string
			batchMax    int32
		}{
			{"batch_max_bytes", nil, 4096},
			{"topic max.message.bytes", map[string]string{"max.message.bytes": "4096"}, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				topic := c.createTopic(t, 1, tc.topicConfig)
				cfg := c.config(topic)
				cfg.BatchMaxBytes = tc.batchMax
				opts, rec, _ := testOptions(t)
				s := newSink(t, cfg, opts)
				small := makeEvents(3, "x", []string{"agg"})
				tooBig := big("too-big", 8192)
				err := s.Publish(ctx, []*event.Event{small[0], tooBig, small[1]})
				var pe *sink.PermanentError
				if !errors.As(err, &pe) || pe.EventID != "too-big" || !errors.Is(err, kerr.MessageTooLarge) {
					t.Fatalf("Publish: %v, want PermanentError for too-big wrapping MESSAGE_TOO_LARGE", err)
				}
				// Fits exactly: the size check matches franz-go's.
				fit := big("fits", 0)
				fit.Data = randomBytes(largestFitting(s, fit, topic, 4096))
				if err := s.Publish(ctx, []*event.Event{small[1], fit, small[2]}); err != nil {
					t.Fatalf("Publish after refusal: %v", err)
				}
				if err := s.Flush(ctx); err != nil {
					t.Fatalf("Flush: %v", err)
				}
				rec.CheckEach(t, append(small, fit))
				if rec.AckCount(tooBig) != 0 {
					t.Fatal("too large event acknowledged")
				}
			})
		}

		t.Run("broker rejects", func(t *testing.T) {
			topic := c.createTopic(t, 1, nil)
			opts, rec, logs := testOptions(t)
			s := newSink(t, c.config(topic), opts)
			before := makeEvents(5, "x", []string{"agg"})
			publishAll(t, s, before, 5)

			alterTopic(t, c, topic, "max.message.bytes", "2048")
			tooBig := big("too-big", 8192)
			after := makeEvents(5, "x", []string{"agg"})
			for _, e := range after {
				e.ID = "after-" + e.ID
			}
			if err := s.Publish(ctx, append([]*event.Event{tooBig}, after...)); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			err := s.Flush(fctx)
			var pe *sink.PermanentError
			if !errors.As(err, &pe) || pe.EventID != "too-big" || !errors.Is(err, kerr.MessageTooLarge) {
				t.Fatalf("Flush: %v, want PermanentError for too-big wrapping MESSAGE_TOO_LARGE", err)
			}
			if rec.AckCount(tooBig) != 0 {
				t.Fatal("rejected event acknowledged")
			}
			// The same key's later events were failed with it: none may be
			// acknowledged (or stored) ahead of it.
			for _, e := range after {
				if rec.AckCount(e) != 0 {
					t.Fatalf("event %s after the rejected one was acknowledged", e.ID)
				}
			}
			if err := s.Publish(ctx, makeEvents(1, "x", []string{"agg"})); !errors.As(err, &pe) || pe.EventID != "too-big" {
				t.Fatalf("Publish after rejection: %v, want the same PermanentError", err)
			}
			if n := logs.Count("rejected an event for good"); n != 1 {
				t.Fatalf("%d rejection log lines, want 1", n)
			}
			recs := c.consume(t, 5, false, topic)
			for _, r := range recs {
				if strings.HasPrefix(string(headerValue(r, "ce_id")), "after-") {
					t.Fatalf("event %s stored after the rejected one", headerValue(r, "ce_id"))
				}
			}
		})
	})
}

func headerValue(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// largestFitting returns the largest data size for which e's record still
// passes the sink's size check against max.
func largestFitting(s *Sink, e *event.Event, topic string, max int) int {
	best := -1
	for n := max - 400; n < max; n++ {
		e.Data = make([]byte, n)
		var r rec
		r.build(e, topic, s.structured, time.Now(), &s.ext)
		size := recordWireSize(&r.kr) + batchOverhead
		if size <= max {
			best = n
		}
	}
	return best
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// deadAddr returns a 127.0.0.1 address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// alterTopic sets a topic config and waits until the broker reports it.
func alterTopic(t *testing.T, c *cluster, topic, key, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: key, Value: &value}}, topic)
	if err == nil {
		_, err = resp.On(topic, nil)
	}
	if err != nil {
		t.Fatalf("alter %s: %v", topic, err)
	}
	for ctx.Err() == nil {
		rcs, err := c.adm.DescribeTopicConfigs(ctx, topic)
		if err == nil {
			if rc, err := rcs.On(topic, nil); err == nil {
				for _, cf := range rc.Configs {
					if cf.Key == key && cf.Value != nil && *cf.Value == value {
						return
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("topic %s: %s not %s after 20s", topic, key, value)
}
