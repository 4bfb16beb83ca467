package redis

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// TestPublishReadBack publishes events of every data kind for several
// aggregates into two streams, reads them back with XRANGE and with a
// consumer group (XREADGROUP), decodes them with the CloudEvents SDK and
// checks every attribute, the field order of the binary layout, per-key order
// and that each event was acknowledged once.
func TestPublishReadBack(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, tc := range []struct {
		mode, dedup string
	}{
		{ContentBinary, DedupEntryID},
		{ContentBinary, DedupGuard},
		{ContentBinary, DedupNone},
		{ContentStructured, DedupEntryID},
		{ContentStructured, DedupGuard},
		{ContentStructured, DedupNone},
	} {
		t.Run(tc.mode+"/"+tc.dedup, func(t *testing.T) {
			prefix := "rb:" + tc.mode + ":" + tc.dedup + ":"
			obs := sinktest.NewRecorder()
			s := newSink(t, srv, Config{
				Stream:      prefix + "{{.AggregateType}}",
				ContentMode: tc.mode,
				Dedup:       tc.dedup,
				BatchSize:   7, // several round trips
			}, obs, nil)
			if s.Dedup() != tc.dedup {
				t.Fatalf("dedup %q, want %q", s.Dedup(), tc.dedup)
			}
			evs := makeEvents(prefix, 301, 5, []string{"order", "invoice"})
			// Hand them over in slices of varying length, as the pipeline does.
			for i := 0; i < len(evs); {
				n := min(1+i%13, len(evs)-i)
				if err := s.Publish(context.Background(), evs[i:i+n]); err != nil {
					t.Fatal(err)
				}
				i += n
			}
			flush(t, s, 30*time.Second)
			obs.CheckExactly(t, evs)

			rc := srv.client(t)
			byID := make(map[string]*event.Event)
			for _, e := range evs {
				byID[e.ID] = e
			}
			seen := 0
			for _, typ := range []string{"order", "invoice"} {
				entries := readStream(t, rc, streamFor(prefix, typ))
				lastPos := make(map[string]int) // per aggregate, index in evs
				for _, en := range entries {
					var got, err = decodeBinary(en)
					if tc.mode == ContentStructured {
						got, err = decodeStructured(en)
					}
					if err != nil {
						t.Fatalf("entry %s: %v", en.id, err)
					}
					want := byID[got.ID()]
					if want == nil {
						t.Fatalf("entry %s: unknown event id %q", en.id, got.ID())
					}
					if want.AggregateType != typ {
						t.Errorf("event %s in stream of %s, want %s", want.ID, typ, want.AggregateType)
					}
					if d := compareEvent(want, got, tc.mode == ContentStructured); d != nil {
						t.Errorf("event %s: %s", want.ID, strings.Join(d, "; "))
					}
					if tc.mode == ContentBinary {
						checkFieldOrder(t, en, want)
					}
					if tc.dedup == DedupEntryID {
						if wantID := string(appendEntryID(nil, want)); en.id != wantID {
							t.Errorf("event %s: entry id %s, want %s", want.ID, en.id, wantID)
						}
					}
					pos := slices.Index(evs, want)
					if last, ok := lastPos[want.AggregateID]; ok && last >= pos {
						t.Errorf("aggregate %s: event %d stored after event %d", want.AggregateID, pos, last)
					}
					lastPos[want.AggregateID] = pos
					seen++
				}
			}
			if seen != len(evs) {
				t.Errorf("read %d entries, want %d", seen, len(evs))
			}

			// A consumer group reads the same entries in the same order.
			ctx := context.Background()
			stream := streamFor(prefix, "order")
			if err := rc.XGroupCreate(ctx, stream, "g", "0").Err(); err != nil {
				t.Fatal(err)
			}
			res, err := rc.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: "c", Streams: []string{stream, ">"}, Count: 1000}).Result()
			if err != nil {
				t.Fatal(err)
			}
			entries := readStream(t, rc, stream)
			if len(res) != 1 || len(res[0].Messages) != len(entries) {
				t.Fatalf("XREADGROUP: %d messages, want %d", len(res[0].Messages), len(entries))
			}
			for i, m := range res[0].Messages {
				if m.ID != entries[i].id {
					t.Errorf("XREADGROUP message %d: id %s, want %s", i, m.ID, entries[i].id)
				}
				if tc.mode == ContentBinary {
					id, _ := entries[i].get(FieldID)
					if m.Values[FieldID] != id {
						t.Errorf("XREADGROUP message %d: event id %v, want %s", i, m.Values[FieldID], id)
					}
				}
			}
		})
	}
}

// checkFieldOrder checks the documented order of the binary layout.
func checkFieldOrder(t *testing.T, en entry, e *event.Event) {
	t.Helper()
	want := []string{FieldSpecVersion, FieldID, FieldSource, FieldType}
	if e.Subject != "" {
		want = append(want, FieldSubject)
	}
	want = append(want, FieldTime)
	if e.DataContentType != "" {
		want = append(want, FieldDataContentType)
	}
	if e.DataSchema != "" {
		want = append(want, FieldDataSchema)
	}
	for _, x := range e.Extensions {
		want = append(want, x.Name)
	}
	if e.DataKind != event.DataNone {
		want = append(want, FieldData)
	}
	var got []string
	for i := 0; i < len(en.fields); i += 2 {
		got = append(got, en.fields[i])
	}
	if !slices.Equal(got, want) {
		t.Errorf("event %s: fields %q, want %q", e.ID, got, want)
	}
}

// TestResendNoDuplicates publishes the same events again (as after a lost
// reply or a restart of outbox-cdc) and finds each once in the stream, the
// second copies acknowledged and counted as duplicates.
func TestResendNoDuplicates(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, layout := range []string{ContentBinary, ContentStructured} {
		for _, dedup := range []string{DedupEntryID, DedupGuard} {
			t.Run(dedup+"/"+layout, func(t *testing.T) {
				prefix := "dup:" + dedup + ":" + layout + ":"
				obs := sinktest.NewRecorder()
				s := newSink(t, srv, Config{Stream: prefix + "{{.AggregateType}}", Dedup: dedup, ContentMode: layout, BatchSize: 50}, obs, nil)
				evs := makeEvents(prefix, 200, 4, []string{"a", "b"})
				if err := s.Publish(context.Background(), evs[:150]); err != nil {
					t.Fatal(err)
				}
				flush(t, s, 30*time.Second)
				// Resend everything from event 100 on, in fresh copies (as the
				// decoder would produce them again), then all 200 once more.
				if err := s.Publish(context.Background(), sinktest.Copy(evs[100:])); err != nil {
					t.Fatal(err)
				}
				if err := s.Publish(context.Background(), sinktest.Copy(evs)); err != nil {
					t.Fatal(err)
				}
				flush(t, s, 30*time.Second)
				acks, dups, _ := stats(obs)
				if want := 150 + 100 + 200; acks != want {
					t.Errorf("%d acknowledgements, want %d", acks, want)
				}
				if want := 50 + 200; dups != want {
					t.Errorf("%d duplicates, want %d", dups, want)
				}
				rc := srv.client(t)
				var ids []string
				for _, st := range []string{prefix + "a", prefix + "b"} {
					for _, en := range readStream(t, rc, st) {
						var got, err = decodeBinary(en)
						if layout == ContentStructured {
							got, err = decodeStructured(en)
						}
						if err != nil {
							t.Fatal(err)
						}
						ids = append(ids, got.ID())
					}
				}
				if len(ids) != len(evs) {
					t.Errorf("%d entries, want %d", len(ids), len(evs))
				}
				slices.Sort(ids)
				if len(slices.Compact(ids)) != len(evs) {
					t.Error("duplicate entries in the streams")
				}
				if dedup != DedupGuard {
					return
				}
				// The guard keys exist, with the TTL, in the stream's slot.
				key := "{" + prefix + "a}" + guardInfix + evs[0].DedupKey()
				n, err := rc.Exists(context.Background(), key).Result()
				if err != nil || n != 1 {
					t.Errorf("guard key %s: exists=%d err=%v", key, n, err)
				}
				ttl, _ := rc.PTTL(context.Background(), key).Result()
				if ttl <= 23*time.Hour || ttl > DefaultGuardTTL {
					t.Errorf("guard TTL %v, want about %v", ttl, DefaultGuardTTL)
				}
			})
		}
	}
}

// TestEntryIDResendAfterTrim: a resent event whose entry was trimmed away
// (MAXLEN) is a duplicate, not an error.
func TestEntryIDResendAfterTrim(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	obs := sinktest.NewRecorder()
	s := newSink(t, srv, Config{Stream: "trim", Dedup: DedupEntryID}, obs, nil)
	evs := makeEvents("trim", 300, 3, []string{"x"})
	if err := s.Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	flush(t, s, 10*time.Second)
	srv.do(t, "XTRIM", "trim", "MAXLEN", "=", "50")
	if err := s.Publish(context.Background(), sinktest.Copy(evs[200:])); err != nil {
		t.Fatal(err)
	}
	flush(t, s, 10*time.Second)
	if acks, dups, _ := stats(obs); acks != 400 || dups != 100 {
		t.Errorf("%d acknowledgements and %d duplicates, want 400 and 100", acks, dups)
	}
	if n := len(readStream(t, srv.client(t), "trim")); n != 50 {
		t.Errorf("%d entries, want 50", n)
	}
}

// TestEntryIDConflict: an entry id already used by another event (another
// writer, or a database restored to an earlier LSN) is a permanent error,
// never a silent "duplicate".
func TestEntryIDConflict(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, tc := range []struct {
		name  string
		setup func(evs []*event.Event)
	}{
		{"same id other event", func(evs []*event.Event) {
			srv.do(t, "XADD", "conf:a", string(appendEntryID(nil, evs[1])), FieldID, "someone-else")
		}},
		{"stream past the id", func(evs []*event.Event) {
			srv.do(t, "XADD", "conf:b", "99999999999-0", FieldID, "later")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := "conf:a"
			if tc.name != "same id other event" {
				stream = "conf:b"
			}
			obs := sinktest.NewRecorder()
			s := newSink(t, srv, Config{Stream: stream, Dedup: DedupEntryID}, obs, nil)
			evs := makeEvents(stream, 3, 3, []string{"x"})
			if tc.name == "same id other event" {
				if err := s.Publish(context.Background(), evs[:1]); err != nil {
					t.Fatal(err)
				}
				flush(t, s, 10*time.Second)
			}
			tc.setup(evs)
			if err := s.Publish(context.Background(), evs[obs.Acks():]); err != nil {
				t.Fatal(err)
			}
			err := s.Flush(context.Background())
			var perr *sink.PermanentError
			if !errors.As(err, &perr) || !strings.Contains(err.Error(), "IDCONFLICT") {
				t.Fatalf("Flush: %v, want an IDCONFLICT PermanentError", err)
			}
			if _, dups, _ := stats(obs); dups != 0 {
				t.Errorf("%d duplicates counted", dups)
			}
		})
	}
}

// TestRestart stops the server while events are published: none is
// acknowledged while it is down; after it restarts every event is
// acknowledged once and stored once, in order, and the sink logged one line
// going down and one coming back.
func TestRestart(t *testing.T) {
	t.Parallel()
	for _, dedup := range []string{DedupEntryID, DedupGuard} {
		t.Run(dedup, func(t *testing.T) {
			t.Parallel()
			testRestart(t, dedup)
		})
	}
}

func testRestart(t *testing.T, dedup string) {
	srv := startServer(t, "--appendonly", "yes", "--appendfsync", "always")
	obs := sinktest.NewRecorder()
	logs := &sinktest.Log{}
	s := newSink(t, srv, Config{
		Stream: "restart:{{.AggregateType}}",
		Dedup:  dedup,
		Retry:  retryFast,
	}, obs, logs)
	evs := makeEvents("rs", 600, 6, []string{"x"})
	if err := s.Publish(context.Background(), evs[:200]); err != nil {
		t.Fatal(err)
	}
	flush(t, s, 30*time.Second)

	srv.stop()
	for i := 200; i < 600; i += 50 {
		if err := s.Publish(context.Background(), evs[i:i+50]); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	if n := obs.Acks(); n != 200 {
		t.Fatalf("%d acknowledgements while the server was down, want 200", n)
	}
	if _, _, retried := stats(obs); retried == 0 {
		t.Error("no retry reported while the server was down")
	}
	srv.start()
	flush(t, s, 60*time.Second)
	obs.CheckExactly(t, evs)
	entries := readStream(t, srv.client(t), "restart:x")
	if len(entries) != len(evs) {
		t.Fatalf("%d entries, want %d", len(entries), len(evs))
	}
	for i, en := range entries {
		if id, _ := en.get(FieldID); id != evs[i].ID {
			t.Fatalf("entry %d is %s, want %s", i, id, evs[i].ID)
		}
	}
	if n := logs.Count("retrying with backoff"); n != 1 {
		t.Errorf("%d 'retrying' log lines, want 1:\n%s", n, logs)
	}
	if n := logs.Count("recovered"); n != 1 {
		t.Errorf("%d 'recovered' log lines, want 1:\n%s", n, logs)
	}
}

// TestRestartWithoutPersistence restarts an empty server (its data and its
// script cache lost): the sink reloads the script (NOSCRIPT) and delivers the
// events published while it was down.
func TestRestartWithoutPersistence(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	obs := sinktest.NewRecorder()
	s := newSink(t, srv, Config{Stream: "np", Dedup: DedupGuard, Retry: retryFast}, obs, nil)
	evs := makeEvents("np", 100, 3, []string{"x"})
	if err := s.Publish(context.Background(), evs[:10]); err != nil {
		t.Fatal(err)
	}
	flush(t, s, 30*time.Second)
	srv.stop()
	if err := s.Publish(context.Background(), evs[10:]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	srv.start()
	flush(t, s, 60*time.Second)
	obs.CheckExactly(t, evs)
	if n := len(readStream(t, srv.client(t), "np")); n != 90 {
		t.Errorf("%d entries after the restart, want 90", n)
	}
}

// TestScriptFlush: SCRIPT FLUSH makes EVALSHA fail with NOSCRIPT; the sink
// loads the script again and goes on without a backoff.
func TestScriptFlush(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	obs := sinktest.NewRecorder()
	s := newSink(t, srv, Config{Stream: "sf", Dedup: DedupGuard}, obs, nil)
	evs := makeEvents("sf", 20, 2, []string{"x"})
	srv.do(t, "SCRIPT", "FLUSH")
	if err := s.Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	flush(t, s, 10*time.Second)
	obs.CheckExactly(t, evs)
	if _, _, retried := stats(obs); retried != 0 {
		t.Errorf("%d retries reported for NOSCRIPT, want 0", retried)
	}
}

// retryFast keeps tests with outages short.
var retryFast = retry.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}

func itoa(n int) string { return strconv.Itoa(n) }

// listenSilent returns the address of a listener that accepts connections
// and never answers.
func listenSilent(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// TestWrongType makes one event's stream key hold a string: that event is
// reported as a *sink.PermanentError naming it, it and the events after it
// are not acknowledged, the ones before are, and Publish fails from then on.
func TestWrongType(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, dedup := range []string{DedupEntryID, DedupGuard, DedupNone} {
		t.Run(dedup, func(t *testing.T) {
			prefix := "wt:" + dedup + ":"
			srv.do(t, "SET", prefix+"bad", "a string")
			obs := sinktest.NewRecorder()
			s := newSink(t, srv, Config{Stream: prefix + "{{.AggregateType}}", Dedup: dedup}, obs, nil)
			evs := makeEvents(prefix, 10, 10, []string{"good"})
			evs[4].AggregateType = "bad"
			if err := s.Publish(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := s.Flush(ctx)
			var perr *sink.PermanentError
			if !errors.As(err, &perr) {
				t.Fatalf("Flush: %v, want a *sink.PermanentError", err)
			}
			if perr.EventID != evs[4].ID || perr.Sink != "test" || !strings.Contains(perr.Error(), "WRONGTYPE") {
				t.Errorf("error %q: want event %s, sink test, WRONGTYPE", perr, evs[4].ID)
			}
			var se *ServerError
			if !errors.As(err, &se) || se.Code != "WRONGTYPE" {
				t.Errorf("error %v does not unwrap to a WRONGTYPE *ServerError", err)
			}
			obs.CheckExactly(t, evs[:4])
			if err := s.Publish(context.Background(), evs[:1]); !errors.As(err, &perr) {
				t.Errorf("Publish after the failure: %v, want the permanent error", err)
			}
			if dedup == DedupGuard {
				// The failed event's guard was removed with its XADD, so a
				// later attempt (after the operator fixed the key) adds it.
				n, _ := srv.client(t).Exists(context.Background(), "{"+prefix+"bad}"+guardInfix+evs[4].DedupKey()).Result()
				if n != 0 {
					t.Error("guard key of the failed event was left behind")
				}
			}
		})
	}
}

// TestStartupChecks covers what New refuses, with messages naming the sink
// and the address and never the password.
func TestStartupChecks(t *testing.T) {
	t.Parallel()
	const password = "s3cret-Pa55"
	open := startServer(t)
	authed := startServer(t, "--requirepass", password)
	authed.do(t, "AUTH", password) // no-op connection check
	rc := authed.client(t, func(o *goredis.Options) { o.Password = password })
	ctx := context.Background()
	if err := rc.Do(ctx, "ACL", "SETUSER", "writer", "on", ">"+password, "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Do(ctx, "ACL", "SETUSER", "reader", "on", ">"+password, "~*", "+@read", "+ping", "+info").Err(); err != nil {
		t.Fatal(err)
	}
	open.do(t, "SET", "notastream", "x")
	dead := freePort(t)

	for _, tc := range []struct {
		name    string
		srv     *testServer
		cfg     Config
		wantErr []string // substrings; nil means success
	}{
		{"wrong address", nil, Config{Address: "127.0.0.1:" + itoa(dead)}, []string{"sink test", "127.0.0.1:" + itoa(dead), "cannot connect"}},
		{"no password given", authed, Config{}, []string{"sink test", authed.addr(), "NOAUTH", "set password"}},
		{"wrong password", authed, Config{Password: "wrong-" + password}, []string{"sink test", authed.addr(), "credentials", "WRONGPASS"}},
		{"wrong user", authed, Config{Username: "nobody", Password: password}, []string{"\"nobody\"", "WRONGPASS"}},
		{"password", authed, Config{Password: password}, nil},
		{"acl user", authed, Config{Username: "writer", Password: password}, nil},
		{"acl user without scripting", authed, Config{Username: "reader", Password: password, Dedup: DedupGuard}, []string{"NOPERM", "\"reader\"", "script"}},
		// A default user without a password accepts any (HELLO ... AUTH).
		{"password where none is needed", open, Config{Password: password}, nil},
		{"static stream key of another type", open, Config{Stream: "notastream"}, []string{"sink test", "\"notastream\"", "holds a string"}},
		{"missing stream with nomkstream", open, Config{Stream: "missing", NoMkStream: true}, []string{"\"missing\"", "nomkstream"}},
		{"dedup idmp on redis 7", open, Config{Dedup: DedupIDMP}, []string{"8.6"}},
		{"bad config", open, Config{ContentMode: "xml"}, []string{"sink test", "content_mode"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Address == "" {
				cfg.Address = tc.srv.addr()
			}
			cfg.ConnectTimeout = 3 * time.Second
			start := time.Now()
			s, err := New(context.Background(), cfg, sinktest.Options("test", nil, nil))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			t.Logf("error: %v", err)
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q contains the password", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("New took %v", d)
			}
		})
	}
}

// TestConnectTimeout: an address that never answers fails New after about
// ConnectTimeout, naming the address.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	redisServerBin(t)
	// A listener that accepts TCP but never speaks RESP.
	l := listenSilent(t)
	start := time.Now()
	_, err := New(context.Background(), Config{Address: l, ConnectTimeout: 1 * time.Second}, sinktest.Options("test", nil, nil))
	if err == nil || !strings.Contains(err.Error(), l) || !strings.Contains(err.Error(), "sink test") {
		t.Fatalf("New: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("New took %v, want about 1s", d)
	}
}

// TestMaxLen trims the stream to about MaxLen entries.
func TestMaxLen(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, dedup := range []string{DedupEntryID, DedupGuard, DedupNone} {
		t.Run(dedup, func(t *testing.T) {
			stream := "ml:" + dedup
			obs := sinktest.NewRecorder()
			s := newSink(t, srv, Config{Stream: stream, Dedup: dedup, MaxLen: 100}, obs, nil)
			evs := makeEvents(stream, 2000, 4, []string{"x"})
			if err := s.Publish(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			flush(t, s, 30*time.Second)
			obs.CheckExactly(t, evs)
			n, err := srv.client(t).XLen(context.Background(), stream).Result()
			if err != nil {
				t.Fatal(err)
			}
			// "~" trims whole radix-tree nodes (100 entries each by default).
			if n < 100 || n > 300 {
				t.Errorf("XLEN %d, want about 100", n)
			}
			last := readStream(t, srv.client(t), stream)
			if id, _ := last[len(last)-1].get(FieldID); id != evs[len(evs)-1].ID {
				t.Errorf("last entry %s, want %s", id, evs[len(evs)-1].ID)
			}
		})
	}
}

// TestNoMkStream: with nomkstream, an event for a missing stream is a
// permanent error; for an existing one it is added.
func TestNoMkStream(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, dedup := range []string{DedupEntryID, DedupGuard, DedupNone} {
		t.Run(dedup, func(t *testing.T) {
			prefix := "nm:" + dedup + ":"
			srv.do(t, "XGROUP", "CREATE", prefix+"here", "g", "$", "MKSTREAM")
			obs := sinktest.NewRecorder()
			s := newSink(t, srv, Config{Stream: prefix + "{{.AggregateType}}", Dedup: dedup, NoMkStream: true}, obs, nil)
			evs := makeEvents(prefix, 3, 3, []string{"here"})
			evs[2].AggregateType = "gone"
			if err := s.Publish(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			err := s.Flush(context.Background())
			var perr *sink.PermanentError
			if !errors.As(err, &perr) || perr.EventID != evs[2].ID || !strings.Contains(err.Error(), "NOSTREAM") {
				t.Fatalf("Flush: %v, want a NOSTREAM PermanentError for %s", err, evs[2].ID)
			}
			obs.CheckExactly(t, evs[:2])
			if n, _ := srv.client(t).Exists(context.Background(), prefix+"gone").Result(); n != 0 {
				t.Error("the missing stream was created")
			}
		})
	}
}

// TestBackpressure: with the server down, Publish blocks once MaxInFlight
// events are unacknowledged and returns ctx's error when ctx ends.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s := newSink(t, srv, Config{Stream: "bp", BatchSize: 10, MaxInFlight: 20, Retry: retryFast}, sinktest.NewRecorder(), nil)
	srv.stop()
	evs := makeEvents("bp", 30, 3, []string{"x"})
	if err := s.Publish(context.Background(), evs[:20]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Publish(ctx, evs[20:]); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish beyond max_in_flight: %v, want context.DeadlineExceeded", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := s.Flush(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush while down: %v", err)
	}
}

// TestClose: Close is idempotent, unblocks a blocked Publish, and Publish
// after Close returns sink.ErrClosed.
func TestClose(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	s := newSink(t, srv, Config{Stream: "cl", BatchSize: 1, MaxInFlight: 1, Retry: retryFast}, sinktest.NewRecorder(), nil)
	srv.stop()
	evs := makeEvents("cl", 3, 1, []string{"x"})
	if err := s.Publish(context.Background(), evs[:1]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var perr error
	wg.Go(func() { perr = s.Publish(context.Background(), evs[1:]) })
	time.Sleep(100 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !errors.Is(perr, sink.ErrClosed) {
		t.Errorf("blocked Publish returned %v, want sink.ErrClosed", perr)
	}
	_ = s.Close()
	if err := s.Publish(context.Background(), evs); !errors.Is(err, sink.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if err := s.Flush(context.Background()); !errors.Is(err, sink.ErrClosed) {
		t.Errorf("Flush after Close: %v", err)
	}
}

// TestEncodeError: an event that cannot be encoded is a PermanentError from
// Publish; the events before it are delivered.
func TestEncodeError(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	obs := sinktest.NewRecorder()
	s := newSink(t, srv, Config{Stream: "ee"}, obs, nil)
	if s.Dedup() != DedupEntryID {
		t.Errorf("dedup auto on redis 7 resolved to %q, want %q", s.Dedup(), DedupEntryID)
	}
	evs := makeEvents("ee", 4, 2, []string{"x"})
	evs[2].Extensions = []event.Extension{{Name: "data", Value: "clash"}}
	err := s.Publish(context.Background(), evs)
	var perr *sink.PermanentError
	if !errors.As(err, &perr) || perr.EventID != evs[2].ID {
		t.Fatalf("Publish: %v, want a PermanentError for %s", err, evs[2].ID)
	}
	flush(t, s, 10*time.Second)
	obs.CheckExactly(t, evs[:2])
}

// TestNoPerm: an ACL user that may not write one of the streams gets a
// *sink.PermanentError naming the event for that stream; the events before
// it are delivered.
func TestNoPerm(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	srv.do(t, "ACL", "SETUSER", "limited", "on", ">pw", "~np:*", "~{np:*", "+@all")
	for _, dedup := range []string{DedupEntryID, DedupGuard, DedupNone} {
		t.Run(dedup, func(t *testing.T) {
			obs := sinktest.NewRecorder()
			s := newSink(t, srv, Config{Username: "limited", Password: "pw", Stream: "{{.AggregateType}}:" + dedup, Dedup: dedup}, obs, nil)
			evs := makeEvents("np-"+dedup, 6, 6, []string{"np"})
			evs[3].AggregateType = "forbidden"
			if err := s.Publish(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			err := s.Flush(context.Background())
			var perr *sink.PermanentError
			if !errors.As(err, &perr) || perr.EventID != evs[3].ID || !strings.Contains(err.Error(), "NOPERM") {
				t.Fatalf("Flush: %v, want a NOPERM PermanentError for %s", err, evs[3].ID)
			}
			obs.CheckExactly(t, evs[:3])
		})
	}
}

// TestOOMRetries: Redis out of memory (maxmemory, noeviction) is retried,
// not reported as permanent; once an operator raises the limit every event
// is delivered once and in order. The sink logs one line going down and one
// coming back.
func TestOOMRetries(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
	for _, dedup := range []string{DedupEntryID, DedupGuard, DedupNone} {
		t.Run(dedup, func(t *testing.T) {
			stream := "oom:" + dedup
			obs := sinktest.NewRecorder()
			logs := &sinktest.Log{}
			s := newSink(t, srv, Config{Stream: stream, Dedup: dedup, BatchSize: 16, Retry: retryFast}, obs, logs)
			evs := makeEvents(stream, 400, 4, []string{"x"})
			big := []byte(`"` + strings.Repeat("x", 8000) + `"`)
			for _, e := range evs {
				e.Data, e.DataKind, e.DataContentType = big, event.DataJSON, "application/json"
			}
			if err := s.Publish(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				if _, _, retried := stats(obs); retried > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no retry while out of memory")
				}
				time.Sleep(20 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if err := s.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Flush while out of memory: %v", err)
			}
			if !strings.Contains(logs.String(), "OOM") {
				t.Errorf("the retry log line does not name OOM:\n%s", logs)
			}
			srv.do(t, "CONFIG", "SET", "maxmemory", "0")
			flush(t, s, 30*time.Second)
			obs.CheckExactly(t, evs)
			entries := readStream(t, srv.client(t), stream)
			if len(entries) != len(evs) {
				t.Fatalf("%d entries, want %d", len(entries), len(evs))
			}
			for i, en := range entries {
				if id, _ := en.get(FieldID); id != evs[i].ID {
					t.Fatalf("entry %d is %s, want %s", i, id, evs[i].ID)
				}
			}
			// Memory may dip below the limit between round trips, so the
			// sink can go down and up more than once; each change is one line.
			down, up := logs.Count("retrying with backoff"), logs.Count("recovered")
			if down == 0 || down != up {
				t.Errorf("%d 'retrying' and %d 'recovered' log lines, want as many of each", down, up)
			}
			srv.do(t, "DEL", stream)
			srv.do(t, "CONFIG", "SET", "maxmemory", "3mb")
		})
	}
}

// TestDocumentedACL: the ACL the documentation lists is enough for every
// mode, resends included.
func TestDocumentedACL(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	srv.do(t, "ACL", "SETUSER", "outbox", "on", ">secret", "~outbox:*", "~{outbox:*",
		"+ping", "+info", "+type", "+multi", "+exec", "+xadd", "+xrange", "+xinfo", "+script|load", "+evalsha", "+set", "+get", "+del")
	for _, dedup := range []string{DedupEntryID, DedupGuard, DedupNone} {
		for _, stream := range []string{"outbox:{{.AggregateType}}:" + dedup, "outbox:static:" + dedup} {
			t.Run(dedup+"/"+stream, func(t *testing.T) {
				obs := sinktest.NewRecorder()
				s := newSink(t, srv, Config{Username: "outbox", Password: "secret", Stream: stream, Dedup: dedup}, obs, nil)
				evs := makeEvents(stream, 20, 4, []string{"x"})
				if err := s.Publish(context.Background(), evs); err != nil {
					t.Fatal(err)
				}
				if err := s.Publish(context.Background(), sinktest.Copy(evs[10:])); err != nil {
					t.Fatal(err)
				}
				flush(t, s, 10*time.Second)
				if acks, _, _ := stats(obs); acks != 30 {
					t.Errorf("%d acknowledgements, want 30", acks)
				}
			})
		}
	}
}
