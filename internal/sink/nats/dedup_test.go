package nats

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
)

// dedupEvent is an event as the decoder makes it: identity source + id,
// committed at lsn.
func dedupEvent(source, id string, lsn uint64) *event.Event {
	e := &event.Event{
		ID: id, Source: source, Type: "com.example.a", AggregateType: "orders",
		Time:      testBaseTime,
		CommitLSN: lsn,
		Extensions: []event.Extension{
			{Name: "pglsn", Value: fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn))},
		},
		Data: []byte(`{"source":"` + source + `"}`), DataKind: event.DataJSON, DataContentType: "application/json",
	}
	return e
}

// publishFlush publishes evs and waits until the sink acknowledged them.
func publishFlush(t *testing.T, s *Sink, evs ...*event.Event) {
	t.Helper()
	if err := s.Publish(ctxTimeout(t, 30*time.Second), evs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := s.Flush(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// storedIdentities returns "source|id" of every message in the stream.
func storedIdentities(t *testing.T, url, stream string) []string {
	t.Helper()
	var out []string
	for i, m := range readStream(t, url, stream) {
		ev, err := decode(m)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		out = append(out, ev.Source()+" "+ev.ID())
	}
	return out
}

// CloudEvents identity is source + id: two events with the same id and
// different sources are two events and both are stored; a resend of either
// (same identity, same commit LSN) is dropped and counted as a duplicate;
// an event with the identity of a stored one but from another commit is
// dropped by the stream's dedup, and the sink says so: one log line naming
// source, id and both LSNs, and a count apart from resends.
func TestDedupIdentityIsSourceAndID(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{})
	for _, mode := range []string{ModeBinary, ModeStructured} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			var logs sinktest.Log
			cfg := baseConfig(srv.URL())
			cfg.ContentMode = mode
			cfg.Stream.Name = "DEDUP_" + strings.ToUpper(mode)
			cfg.Subject = "dedup" + mode + ".{{.AggregateType}}"
			rec := sinktest.NewRecorder()
			s := newSinkLog(t, cfg, rec, slog.New(slog.NewTextHandler(&logs, nil)))

			shipping := dedupEvent("/shipping", "1001", 0x1000100)
			returns := dedupEvent("/returns", "1001", 0x1000200)
			publishFlush(t, s, shipping, returns)
			if got := storedIdentities(t, srv.URL(), cfg.Stream.Name); len(got) != 2 {
				t.Fatalf("stream holds %q after two events with id 1001 from /shipping and /returns; want both", got)
			}
			if d, o := int64(rec.Duplicates()), int64(len(rec.OtherCommits())); d != 0 || o != 0 {
				t.Fatalf("%d duplicates, %d from another commit; want 0 and 0", d, o)
			}

			// A true resend: the same events again, as after a restart.
			publishFlush(t, s, dedupEvent("/shipping", "1001", 0x1000100), dedupEvent("/returns", "1001", 0x1000200))
			if d, o := int64(rec.Duplicates()), int64(len(rec.OtherCommits())); d != 2 || o != 0 {
				t.Fatalf("resend of both: %d duplicates, %d from another commit; want 2 and 0", d, o)
			}

			// The identity of /shipping 1001 again, from a later commit.
			publishFlush(t, s, dedupEvent("/shipping", "1001", 0x1000300))
			if d, o := int64(rec.Duplicates()), int64(len(rec.OtherCommits())); d != 2 || o != 1 {
				t.Fatalf("same identity from another commit: %d duplicates, %d from another commit; want 2 and 1", d, o)
			}
			if got := rec.OtherCommits(); len(got) != 1 || got[0] != 0x1000100 {
				t.Fatalf("stored LSNs reported %x, want [1000100]", got)
			}
			log := logs.String()
			for _, want := range []string{"source=/shipping", "id=1001", "lsn=0/1000300", "stored_lsn=0/1000100"} {
				if !strings.Contains(log, want) {
					t.Errorf("log has no %q:\n%s", want, log)
				}
			}

			// Delivery goes on after it.
			publishFlush(t, s, dedupEvent("/shipping", "1002", 0x1000400))
			got := storedIdentities(t, srv.URL(), cfg.Stream.Name)
			want := []string{"/shipping 1001", "/returns 1001", "/shipping 1002"}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("stream holds %q, want %q", got, want)
			}
			if n := int64(rec.Acks()); n != 6 {
				t.Fatalf("%d events acknowledged, want 6", n)
			}
		})
	}
}

// A duplicate whose stored copy has no commit LSN (a message another client
// published under the same message id) cannot be told apart: it is counted
// as a duplicate, acknowledged, and delivery goes on.
func TestDuplicateOfForeignMessage(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{})
	cfg := baseConfig(srv.URL())
	cfg.Subject = "outbox.{{.AggregateType}}"
	rec := sinktest.NewRecorder()
	s := newSink(t, cfg, rec)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, "outbox.orders", []byte("x"), jetstream.WithMsgID("/foreign|1")); err != nil {
		t.Fatal(err)
	}
	publishFlush(t, s, dedupEvent("/foreign", "1", 0x2000000), dedupEvent("/foreign", "2", 0x2000000))
	if d, o := int64(rec.Duplicates()), int64(len(rec.OtherCommits())); d != 1 || o != 0 {
		t.Fatalf("%d duplicates, %d from another commit; want 1 and 0", d, o)
	}
	if n := len(readStream(t, srv.URL(), "OUTBOX")); n != 2 {
		t.Fatalf("stream holds %d messages, want 2", n)
	}
}
