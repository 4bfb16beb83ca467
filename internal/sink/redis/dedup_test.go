package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// dedupEvent is an event as the decoder makes it: identity source + id,
// committed at lsn, first in its transaction.
func dedupEvent(source, id string, lsn uint64) *event.Event {
	return &event.Event{
		ID: id, Source: source, Type: "com.example.a", AggregateType: "orders",
		CommitLSN: lsn,
		Extensions: []event.Extension{
			{Name: "pglsn", Value: fmt.Sprintf("%X/%X", lsn>>32, uint32(lsn))},
		},
		Data: []byte(`{"source":"` + source + `"}`), DataKind: event.DataJSON, DataContentType: "application/json",
	}
}

func publishFlush(t *testing.T, s *Sink, evs ...*event.Event) {
	t.Helper()
	if err := s.Publish(context.Background(), evs); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	flush(t, s, 30*time.Second)
}

// storedIdentities returns "source id" of every entry of stream.
func storedIdentities(t *testing.T, srv *testServer, stream string, structured bool) []string {
	t.Helper()
	var out []string
	for _, en := range readStream(t, srv.client(t), stream) {
		got, err := decodeBinary(en)
		if structured {
			got, err = decodeStructured(en)
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got.Source()+" "+got.ID())
	}
	return out
}

// CloudEvents identity is source + id, in every dedup mode: two events with
// the same id and different sources are both stored; a resend of either
// (same identity, same commit LSN) is dropped and counted as a duplicate.
// In guard mode an event with the identity of a stored one from another
// commit is dropped by the guard, and the sink says so: one log line naming
// source, id and both LSNs (the guard holds the stored event's LSN), and a
// count apart from resends.
func TestDedupIdentityIsSourceAndID(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, layout := range []string{ContentBinary, ContentStructured} {
		for _, dedup := range []string{DedupGuard, DedupEntryID} {
			t.Run(dedup+"/"+layout, func(t *testing.T) {
				stream := "ident:" + dedup + ":" + layout
				var logs sinktest.Log
				obs := sinktest.NewRecorder()
				s := newSink(t, srv, Config{Stream: stream, Dedup: dedup, ContentMode: layout}, obs, &logs)
				structured := layout == ContentStructured

				publishFlush(t, s, dedupEvent("/shipping", "1001", 0x1000100), dedupEvent("/returns", "1001", 0x1000200))
				if got := storedIdentities(t, srv, stream, structured); len(got) != 2 {
					t.Fatalf("stream holds %q after two events with id 1001 from /shipping and /returns; want both", got)
				}
				if _, d, _ := stats(obs); d != 0 || len(obs.OtherCommits()) != 0 {
					t.Fatalf("%d duplicates, %d from another commit; want 0 and 0", d, len(obs.OtherCommits()))
				}

				// A true resend: the same events again, as after a restart.
				publishFlush(t, s, dedupEvent("/shipping", "1001", 0x1000100), dedupEvent("/returns", "1001", 0x1000200))
				if _, d, _ := stats(obs); d != 2 || len(obs.OtherCommits()) != 0 {
					t.Fatalf("resend of both: %d duplicates, %d from another commit; want 2 and 0", d, len(obs.OtherCommits()))
				}
				if dedup != DedupGuard {
					return // entry ids are commit positions: another commit is another entry
				}
				key := "{" + stream + "}" + guardInfix + "/shipping|1001"
				if v, err := srv.client(t).Get(context.Background(), key).Result(); err != nil || v != "0/1000100" {
					t.Fatalf("guard %s = %q, %v; want the commit LSN 0/1000100", key, v, err)
				}

				// The identity of /shipping 1001 again, from a later commit.
				publishFlush(t, s, dedupEvent("/shipping", "1001", 0x1000300))
				if _, d, _ := stats(obs); d != 2 || len(obs.OtherCommits()) != 1 {
					t.Fatalf("same identity from another commit: %d duplicates, %d from another commit; want 2 and 1", d, len(obs.OtherCommits()))
				}
				if got := obs.OtherCommits(); len(got) != 1 || got[0] != 0x1000100 {
					t.Fatalf("stored LSNs reported %x, want [1000100]", got)
				}
				log := logs.String()
				for _, want := range []string{"source=/shipping", "id=1001", "lsn=0/1000300", "stored_lsn=0/1000100"} {
					if !strings.Contains(log, want) {
						t.Errorf("log has no %q:\n%s", want, log)
					}
				}
				publishFlush(t, s, dedupEvent("/shipping", "1002", 0x1000400))
				got := storedIdentities(t, srv, stream, structured)
				want := []string{"/shipping 1001", "/returns 1001", "/shipping 1002"}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Fatalf("stream holds %q, want %q", got, want)
				}
				if acks, _, _ := stats(obs); acks != 6 {
					t.Fatalf("%d acknowledgements, want 6", acks)
				}
			})
		}
	}
}

// A guard whose value is not an LSN (set by an earlier version, or by
// hand), and a guard the ACL user may not read: the duplicate is counted as
// one, acknowledged, and delivery goes on; an unreadable guard is logged
// once with what to grant.
func TestGuardWithoutLSN(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	srv.do(t, "SET", "{old}"+guardInfix+"/s|1", "1")
	var logs sinktest.Log
	obs := sinktest.NewRecorder()
	s := newSink(t, srv, Config{Stream: "old", Dedup: DedupGuard}, obs, &logs)
	publishFlush(t, s, dedupEvent("/s", "1", 0x10), dedupEvent("/s", "2", 0x10))
	if acks, d, _ := stats(obs); acks != 2 || d != 1 || len(obs.OtherCommits()) != 0 {
		t.Fatalf("%d acknowledgements, %d duplicates, %d from another commit; want 2, 1, 0", acks, d, len(obs.OtherCommits()))
	}

	srv.do(t, "ACL", "SETUSER", "noget", "on", ">pw", "~*", "+@all", "-get")
	obs = sinktest.NewRecorder()
	s = newSink(t, srv, Config{Stream: "old", Dedup: DedupGuard, Username: "noget", Password: "pw"}, obs, &logs)
	publishFlush(t, s, dedupEvent("/s", "2", 0x20), dedupEvent("/s", "2", 0x20), dedupEvent("/s", "3", 0x20))
	if acks, d, _ := stats(obs); acks != 3 || d != 2 || len(obs.OtherCommits()) != 0 {
		t.Fatalf("without GET: %d acknowledgements, %d duplicates, %d from another commit; want 3, 2, 0", acks, d, len(obs.OtherCommits()))
	}
	if n := logs.Count("cannot read"); n != 1 {
		t.Errorf("%d log lines about the unreadable guard, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "+get") {
		t.Errorf("the log does not say to grant +get:\n%s", logs.String())
	}
}

// In entryid mode an entry at the event's position that holds the same id
// under another source is another event: IDCONFLICT, not a duplicate.
func TestEntryIDConflictOtherSource(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	e := dedupEvent("/shipping", "1001", 0x1000100)
	srv.do(t, "XADD", "confsrc", string(appendEntryID(nil, e)), FieldID, "1001", FieldSource, "/returns")
	obs := sinktest.NewRecorder()
	s := newSink(t, srv, Config{Stream: "confsrc", Dedup: DedupEntryID}, obs, nil)
	if err := s.Publish(context.Background(), []*event.Event{e}); err != nil {
		t.Fatal(err)
	}
	err := s.Flush(context.Background())
	var perr *sink.PermanentError
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "IDCONFLICT") || !strings.Contains(err.Error(), "/returns") {
		t.Fatalf("Flush: %v, want an IDCONFLICT PermanentError naming source /returns", err)
	}
	if acks, d, _ := stats(obs); acks != 0 || d != 0 {
		t.Errorf("%d acknowledgements, %d duplicates; want none", acks, d)
	}
}
