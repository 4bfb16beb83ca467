package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// fastRetry makes recovery quick in tests.
var fastRetry = retry.Backoff{Initial: 20 * time.Millisecond, Max: 300 * time.Millisecond}

func baseConfig(url string) Config {
	return Config{
		URL:           url,
		Stream:        StreamConfig{Name: "OUTBOX", Create: true},
		ReconnectWait: 100 * time.Millisecond,
		Retry:         fastRetry,
	}
}

func publishAll(t *testing.T, s *Sink, evs []*event.Event, batch int) {
	t.Helper()
	ctx := ctxTimeout(t, 60*time.Second)
	for len(evs) > 0 {
		n := min(batch, len(evs))
		if err := s.Publish(ctx, evs[:n]); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		evs = evs[n:]
	}
}

func TestPublishRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		mode    string
		relaxed bool
	}{
		{"binary", ModeBinary, false},
		{"structured", ModeStructured, false},
		{"binary relaxed order", ModeBinary, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startNATS(t, harness.NATSOptions{})
			stream := strings.ToUpper(strings.ReplaceAll(tc.name, " ", "_"))
			cfg := baseConfig(srv.URL())
			cfg.ContentMode, cfg.RelaxedOrder = tc.mode, tc.relaxed
			cfg.Stream.Name = stream
			cfg.MaxInFlight = 256 // smaller than the run, so Publish blocks on it
			rec := sinktest.NewRecorder()
			s := newSink(t, cfg, rec)
			evs := makeEvents(0, 3000, 7)
			publishAll(t, s, evs, 500)
			if err := s.Flush(ctxTimeout(t, 30*time.Second)); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			rec.CheckInOrder(t, evs)
			if int64(rec.Acks()) != int64(len(evs)) {
				t.Fatalf("tracker saw %d events done, want %d", int64(rec.Acks()), len(evs))
			}
			if d, r := int64(rec.Duplicates()), retries(rec); d != 0 || r != 0 {
				t.Errorf("%d duplicates and %d retries on a healthy server", d, r)
			}
			msgs := checkStream(t, srv.URL(), stream, evs)
			// Binary mode puts datacontenttype in ce-datacontenttype and
			// sets no content-type, which would mean structured mode.
			for _, m := range msgs[:10] {
				ct := m.Headers().Get("content-type")
				if tc.mode == ModeStructured && ct != "application/cloudevents+json" {
					t.Fatalf("structured message with content-type %q", ct)
				}
				if tc.mode != ModeStructured && ct != "" {
					t.Fatalf("binary message with content-type %q", ct)
				}
			}
			// Flush with nothing pending returns at once.
			if err := s.Flush(ctxTimeout(t, time.Second)); err != nil {
				t.Fatalf("second Flush: %v", err)
			}
		})
	}
}

// The acknowledgements of the sink follow the server's: with the server down
// nothing is acknowledged, events taken meanwhile are delivered once it is
// back, without loss or duplicates and in order.
func TestServerStoppedAndRestarted(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{})
	var logs sinktest.Log
	rec := sinktest.NewRecorder()
	s := newSinkLog(t, baseConfig(srv.URL()), rec, slog.New(slog.NewTextHandler(&logs, nil)))

	evs := makeEvents(0, 1500, 5)
	publishAll(t, s, evs[:500], 100)
	if err := s.Flush(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	publishAll(t, s, evs[500:], 100) // taken: in-flight room is 4096
	time.Sleep(2 * time.Second)
	if n := int64(rec.Acks()); n != 500 {
		t.Fatalf("%d events acknowledged while the server was down, want 500", n)
	}
	if err := s.Flush(ctxTimeout(t, 200*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush with the server down = %v, want context.DeadlineExceeded", err)
	}
	if err := srv.Start(ctxTimeout(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctxTimeout(t, 60*time.Second)); err != nil {
		t.Fatalf("Flush after restart: %v", err)
	}
	rec.CheckInOrder(t, evs)
	if retries(rec) == 0 {
		t.Error("no retry reported to the observer")
	}
	checkStream(t, srv.URL(), "OUTBOX", evs)

	// One line when it went down, one when it came back; none per event.
	out := logs.String()
	for _, want := range []string{`msg="nats sink disconnected`, `msg="nats sink reconnected`,
		`msg="sink cannot deliver`, `msg="sink recovered`} {
		if strings.Count(out, want) != 1 {
			t.Errorf("log has %d lines with %q, want 1:\n%s", strings.Count(out, want), want, out)
		}
	}
}

// The server is killed while events stream in; every event arrives once, in
// order.
func TestServerKilledMidStream(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{})
	rec := sinktest.NewRecorder()
	s := newSink(t, baseConfig(srv.URL()), rec)
	evs := makeEvents(0, 20000, 11)

	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for i := 0; i < len(evs); i += 200 {
			if err := s.Publish(ctx, evs[i:min(i+200, len(evs))]); err != nil {
				errc <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		errc <- s.Flush(ctx)
	}()
	rec.WaitAcks(t, 3000, 30*time.Second)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	// Acknowledgements the server sent before it died may still be on
	// their way through the client; after that, none may come.
	time.Sleep(300 * time.Millisecond)
	acked := int64(rec.Acks())
	time.Sleep(time.Second)
	if n := int64(rec.Acks()); n != acked {
		t.Fatalf("%d events acknowledged while the server was dead", n-acked)
	}
	if err := srv.Start(ctxTimeout(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	if acked == int64(len(evs)) {
		t.Fatal("everything was acknowledged before the kill; the test proves nothing")
	}
	rec.CheckInOrder(t, evs)
	checkStream(t, srv.URL(), "OUTBOX", evs)
}

// Acknowledgements are lost (held back by a proxy) while the messages reach
// the server: the sink resends them, the server drops the copies by their
// Nats-Msg-Id, and the stream holds each event once. Then the connection is
// cut with publishes in flight.
func TestResendsAreDeduplicated(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{})
	px := newProxy(t, srv.Addr())
	cfg := baseConfig(px.url())
	cfg.AckTimeout = 300 * time.Millisecond
	rec := sinktest.NewRecorder()
	s := newSink(t, cfg, rec)
	evs := makeEvents(0, 3000, 4)

	publishAll(t, s, evs[:200], 100)
	if err := s.Flush(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	px.hold(true)
	publishAll(t, s, evs[200:1200], 100)
	time.Sleep(1500 * time.Millisecond) // several ack timeouts and resend rounds
	if n := int64(rec.Acks()); n != 200 {
		t.Fatalf("%d events acknowledged while acknowledgements were held back, want 200", n)
	}
	px.hold(false)
	if err := s.Flush(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if int64(rec.Duplicates()) == 0 {
		t.Fatal("no duplicate acknowledgements: the resends did not happen or were stored twice")
	}

	// Cut the connection repeatedly while publishing (for about 1.8s).
	retried := retries(rec)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i := 1200; i < len(evs); i += 10 {
			if err := s.Publish(ctx, evs[i:min(i+10, len(evs))]); err != nil {
				errc <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		errc <- s.Flush(ctx)
	}()
	for i := 0; i < 3; i++ {
		time.Sleep(300 * time.Millisecond)
		px.cut()
	}
	if err := <-errc; err != nil {
		t.Fatalf("publisher: %v", err)
	}
	if retries(rec) == retried {
		t.Fatal("cutting the connection caused no resend")
	}
	rec.CheckInOrder(t, evs)
	checkStream(t, srv.URL(), "OUTBOX", evs)
	t.Logf("%d duplicate acknowledgements, %d retry rounds", int64(rec.Duplicates()), retries(rec))
}

// Acknowledgements are lost for longer than the stream's duplicate window,
// so the server no longer recognises the resent copies by their message id.
// With strict order the copies still cannot be stored (the stream's last
// message is not the one they expect) and the refusal names the stream's
// last message, which tells the sink they are stored: no duplicates. With
// relaxed order the copies are stored again.
func TestLostAcksBeyondDuplicateWindow(t *testing.T) {
	t.Parallel()
	for _, relaxed := range []bool{false, true} {
		t.Run(fmt.Sprintf("relaxed=%v", relaxed), func(t *testing.T) {
			t.Parallel()
			srv := startNATS(t, harness.NATSOptions{})
			px := newProxy(t, srv.Addr())
			cfg := baseConfig(px.url())
			cfg.RelaxedOrder = relaxed
			cfg.Stream.DuplicateWindow = 500 * time.Millisecond
			cfg.AckTimeout = 300 * time.Millisecond
			rec := sinktest.NewRecorder()
			s := newSink(t, cfg, rec)
			evs := makeEvents(0, 400, 3)
			publishAll(t, s, evs[:100], 100)
			if err := s.Flush(ctxTimeout(t, 30*time.Second)); err != nil {
				t.Fatal(err)
			}
			px.hold(true)
			publishAll(t, s, evs[100:], 100)
			time.Sleep(2 * time.Second) // four duplicate windows of resends
			px.hold(false)
			if err := s.Flush(ctxTimeout(t, 30*time.Second)); err != nil {
				t.Fatal(err)
			}
			rec.CheckInOrder(t, evs)
			if relaxed {
				// This proves the scenario happened: copies outlived the window.
				if n := len(readStream(t, srv.URL(), "OUTBOX")); n <= len(evs) {
					t.Fatalf("relaxed order stored %d messages for %d events; want duplicates", n, len(evs))
				}
				return
			}
			checkStream(t, srv.URL(), "OUTBOX", evs)
		})
	}
}

// With strict order a message the stream did not expect is refused and the
// sink starts a new chain; a foreign publisher costs a resend round, not an
// event. With relaxed order the foreign message is no concern.
func TestForeignPublisher(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{})
	for _, relaxed := range []bool{false, true} {
		t.Run(fmt.Sprintf("relaxed=%v", relaxed), func(t *testing.T) {
			stream := fmt.Sprintf("FOREIGN_%v", relaxed)
			cfg := baseConfig(srv.URL())
			cfg.Stream.Name, cfg.RelaxedOrder = stream, relaxed
			cfg.Subject = "foreign" + stream + ".{{.AggregateType}}"
			rec := sinktest.NewRecorder()
			s := newSink(t, cfg, rec)
			evs := makeEvents(0, 40, 3)

			nc, err := nats.Connect(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ctx := ctxTimeout(t, 30*time.Second)
			for i := 0; i < 40; i += 10 {
				publishAll(t, s, evs[i:i+10], 10)
				if err := s.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if _, err := js.Publish(ctx, "foreign"+stream+".other", []byte("x"), jetstream.WithMsgID(fmt.Sprint("foreign-", i))); err != nil {
					t.Fatal(err)
				}
			}
			rec.CheckInOrder(t, evs)
			if relaxed && retries(rec) != 0 {
				t.Errorf("%d retries with relaxed order", retries(rec))
			}
			if !relaxed && retries(rec) != 3 {
				t.Errorf("%d retry rounds with strict order, want 3 (one per foreign message)", retries(rec))
			}
		})
	}
}

// Event k fails at the server while k+1, already on the wire, would be
// stored: a stream that keeps one message per subject and refuses new ones
// refuses k (its subject is full) and takes k+1 (another subject). With
// strict order the chain header makes the server refuse k+1 as well, so the
// stream keeps k before k+1 once k's subject has room; relaxed order stores
// k+1 first. Acknowledgements are in order either way.
func TestOrderWhenAnEarlierPublishFails(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{})
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for _, relaxed := range []bool{false, true} {
		t.Run(fmt.Sprintf("relaxed=%v", relaxed), func(t *testing.T) {
			ctx := ctxTimeout(t, 60*time.Second)
			name := fmt.Sprintf("PERSUBJ_%v", relaxed)
			subj := "ps" + name
			st, err := js.CreateStream(ctx, jetstream.StreamConfig{
				Name: name, Subjects: []string{subj + ".>"},
				MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, subj+".a", []byte("occupies subject a")); err != nil {
				t.Fatal(err)
			}
			cfg := baseConfig(srv.URL())
			cfg.Subject = subj + ".{{.AggregateType}}"
			cfg.Stream = StreamConfig{Name: name}
			cfg.RelaxedOrder = relaxed
			rec := sinktest.NewRecorder()
			s := newSink(t, cfg, rec)
			evs := makeEvents(0, 2, 2)
			evs[0].AggregateType, evs[1].AggregateType = "a", "b"
			if err := s.Publish(ctx, evs); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			if n := int64(rec.Acks()); n != 0 {
				t.Fatalf("%d events acknowledged while the first cannot be stored", n)
			}
			info, _ := st.Info(ctx)
			if want := map[bool]uint64{false: 1, true: 2}[relaxed]; info.State.Msgs != want {
				t.Fatalf("stream holds %d messages while the first event fails, want %d", info.State.Msgs, want)
			}
			if err := st.Purge(ctx, jetstream.WithPurgeSubject(subj+".a")); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			rec.CheckInOrder(t, evs)
			var order []string
			for _, m := range readStream(t, srv.URL(), name) {
				order = append(order, m.Headers().Get("Nats-Msg-Id"))
			}
			want := []string{evs[0].DedupKey(), evs[1].DedupKey()}
			if relaxed {
				want = []string{evs[1].DedupKey(), evs[0].DedupKey()} // the window relaxed order leaves open
			}
			if !slices.Equal(order, want) {
				t.Fatalf("stream order %q, want %q", order, want)
			}
		})
	}
}

func TestMaxPayloadIsPermanent(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{MaxPayload: 4096})
	rec := sinktest.NewRecorder()
	s := newSink(t, baseConfig(srv.URL()), rec)
	evs := makeEvents(0, 30, 3)
	big := evs[10]
	big.DataKind, big.Data = event.DataBinary, make([]byte, 8000)

	err := s.Publish(ctxTimeout(t, 10*time.Second), evs)
	var perr *sink.PermanentError
	if !errors.As(err, &perr) {
		t.Fatalf("Publish = %v, want a *sink.PermanentError", err)
	}
	if perr.Sink != "t1" || perr.EventID != big.ID || !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("PermanentError = %+v (%v), want sink t1, event %s, wrapping nats.ErrMaxPayload", perr, err, big.ID)
	}
	if !strings.Contains(err.Error(), "max_payload of 4096") {
		t.Errorf("error %q does not name the limit", err)
	}
	// The events before it are delivered; it and the later ones are not.
	if ferr := s.Flush(ctxTimeout(t, 10*time.Second)); !errors.Is(ferr, perr) {
		t.Fatalf("Flush = %v, want the permanent error", ferr)
	}
	rec.WaitAcks(t, 10, 10*time.Second)
	time.Sleep(100 * time.Millisecond)
	if n := int64(rec.Acks()); n != 10 {
		t.Fatalf("%d events acknowledged, want the 10 before the large one", n)
	}
	if rec.AckCountID(big.ID) != 0 {
		t.Fatal("the event that cannot be delivered was acknowledged")
	}
	if err2 := s.Publish(ctxTimeout(t, time.Second), evs[20:]); !errors.Is(err2, perr) {
		t.Fatalf("next Publish = %v, want the same permanent error", err2)
	}
}

func TestSubjectErrorsArePermanent(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{})
	for _, tc := range []struct {
		name    string
		aggType string
		want    error
	}{
		{"not in stream", "users", ErrSubjectNotInStream},
		{"white space", "bad type", ErrInvalidSubject},
		{"empty token", "", ErrInvalidSubject},
		{"wildcard", "*", ErrInvalidSubject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(srv.URL())
			cfg.Stream.Name = "SUBJ_" + strings.ReplaceAll(tc.name, " ", "_")
			cfg.Subject = "s" + cfg.Stream.Name + ".{{.AggregateType}}"
			cfg.Stream.Subjects = []string{"s" + cfg.Stream.Name + ".*"}
			if tc.want == ErrSubjectNotInStream {
				cfg.Stream.Subjects = []string{"s" + cfg.Stream.Name + ".orders"}
			}
			rec := sinktest.NewRecorder()
			s := newSink(t, cfg, rec)
			evs := makeEvents(0, 3, 1)
			evs[2].AggregateType = tc.aggType
			err := s.Publish(ctxTimeout(t, 10*time.Second), evs)
			var perr *sink.PermanentError
			if !errors.As(err, &perr) || perr.EventID != evs[2].ID || !errors.Is(err, tc.want) {
				t.Fatalf("Publish = %v, want a PermanentError for %s wrapping %v", err, evs[2].ID, tc.want)
			}
			rec.WaitAcks(t, 2, 10*time.Second)
		})
	}
}

func TestPermissionViolationIsPermanent(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{ExtraConf: []string{
		`authorization { users = [ {user: pub, password: pw, permissions: {publish: {allow: [">"], deny: ["outbox.secret"]}}} ] }`,
	}})
	cfg := baseConfig(srv.URL())
	cfg.User, cfg.Password = "pub", "pw"
	cfg.AckTimeout = time.Minute // the violation must be found without waiting for it
	rec := sinktest.NewRecorder()
	s := newSink(t, cfg, rec)
	evs := makeEvents(0, 20, 2)
	evs[5].AggregateType = "secret"
	start := time.Now()
	// The violation comes back asynchronously: from Publish if it arrives
	// while the batch is still being taken, else from Flush.
	err := s.Publish(ctxTimeout(t, 10*time.Second), evs)
	if err == nil {
		err = s.Flush(ctxTimeout(t, 20*time.Second))
	}
	var perr *sink.PermanentError
	if !errors.As(err, &perr) || perr.EventID != evs[5].ID || !errors.Is(err, nats.ErrPermissionViolation) {
		t.Fatalf("Publish/Flush = %v, want a PermanentError for %s wrapping nats.ErrPermissionViolation", err, evs[5].ID)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the violation took %v to surface", d)
	}
	rec.WaitAcks(t, 5, 10*time.Second)
	if rec.AckCountID(evs[5].ID) != 0 {
		t.Fatal("the refused event was acknowledged")
	}
}

// A stream deleted under the sink: without stream.create the sink fails
// permanently; with it the stream is created again and delivery goes on.
func TestStreamDeleted(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{})
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for _, create := range []bool{false, true} {
		t.Run(fmt.Sprintf("create=%v", create), func(t *testing.T) {
			ctx := ctxTimeout(t, 60*time.Second)
			name := fmt.Sprintf("DELETED_%v", create)
			subj := "del" + name
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj + ".>"}}); err != nil {
				t.Fatal(err)
			}
			cfg := baseConfig(srv.URL())
			cfg.Subject = subj + ".{{.AggregateType}}"
			cfg.Stream = StreamConfig{Name: name, Create: create}
			rec := sinktest.NewRecorder()
			s := newSink(t, cfg, rec)
			evs := makeEvents(0, 20, 2)
			publishAll(t, s, evs[:10], 10)
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := js.DeleteStream(ctx, name); err != nil {
				t.Fatal(err)
			}
			// The failure is found asynchronously: Publish or Flush reports it.
			err := s.Publish(ctx, evs[10:])
			if err == nil {
				err = s.Flush(ctx)
			}
			if !create {
				var perr *sink.PermanentError
				if !errors.As(err, &perr) || perr.EventID != evs[10].ID || !strings.Contains(err.Error(), "no longer exists") {
					t.Fatalf("Flush = %v, want a PermanentError for %s saying the stream is gone", err, evs[10].ID)
				}
				return
			}
			if err != nil {
				t.Fatalf("Flush = %v", err)
			}
			rec.CheckInOrder(t, evs)
			st, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if n := st.CachedInfo().State.Msgs; n != 10 {
				t.Fatalf("recreated stream holds %d messages, want 10", n)
			}
		})
	}
}

// In-flight events are capped: Publish blocks at MaxInFlight.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{})
	cfg := baseConfig(srv.URL())
	cfg.MaxInFlight = 16
	rec := sinktest.NewRecorder()
	s := newSink(t, cfg, rec)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	evs := makeEvents(0, 40, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := s.Publish(ctx, evs); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish = %v, want context.DeadlineExceeded", err)
	}
	if n := s.eng.InFlight(); n != 16 {
		t.Fatalf("%d events in flight, want 16", n)
	}
	if err := srv.Start(ctxTimeout(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctxTimeout(t, 30*time.Second), evs[16:]); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctxTimeout(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	rec.CheckInOrder(t, evs)
}

func TestClose(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{})
	rec := sinktest.NewRecorder()
	s := newSink(t, baseConfig(srv.URL()), rec)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Publish(context.Background(), makeEvents(0, 1, 1)); !errors.Is(err, sink.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want sink.ErrClosed", err)
	}
}

func TestStartupErrors(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{})
	auth := startNATS(t, harness.NATSOptions{User: "alice", Password: "right-pw"})
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctxTimeout(t, 10*time.Second), jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}}); err != nil {
		t.Fatal(err)
	}
	freePort, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// A server that accepts and never speaks.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	for _, tc := range []struct {
		name   string
		cfg    Config
		want   []string
		absent string
	}{
		{"refused", Config{URL: fmt.Sprintf("nats://bob:s3cret@127.0.0.1:%d", freePort), Stream: StreamConfig{Name: "S"}},
			[]string{"sink t1: cannot connect", fmt.Sprintf("nats://redacted@127.0.0.1:%d", freePort), "check url"}, "s3cret"},
		{"silent server", Config{URL: "nats://" + silent.Addr().String(), ConnectTimeout: 500 * time.Millisecond, Stream: StreamConfig{Name: "S"}},
			[]string{"sink t1: cannot connect", silent.Addr().String(), "500ms"}, ""},
		{"wrong password", Config{URL: auth.URL(), User: "alice", Password: "wrong-pw", Stream: StreamConfig{Name: "S"}},
			[]string{"sink t1:", "uthorization", "check the credentials"}, "wrong-pw"},
		{"missing stream", Config{URL: srv.URL(), Stream: StreamConfig{Name: "NOPE"}},
			[]string{"sink t1:", `stream "NOPE" does not exist`, "stream.create: true", "outbox.>"}, ""},
		{"stream does not cover subject", Config{URL: srv.URL(), Stream: StreamConfig{Name: "OTHER"}},
			[]string{"sink t1:", `"other.>"`, `add "outbox.>"`}, ""},
		{"invalid config", Config{URL: srv.URL(), Token: "tok3n", User: "u", Stream: StreamConfig{Name: "S"}},
			[]string{"sink t1: invalid nats configuration", "mutually exclusive"}, "tok3n"},
		{"bad nkey file", Config{URL: srv.URL(), NKeySeedFile: "/nonexistent/seed.nk", Stream: StreamConfig{Name: "S"}},
			[]string{"sink t1:", "nkey_seed_file"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			s, err := New(ctxTimeout(t, 30*time.Second), tc.cfg, sink.Options{Name: "t1"})
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.absent != "" && strings.Contains(err.Error(), tc.absent) {
				t.Errorf("error %q reveals %q", err, tc.absent)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("New took %v to fail", d)
			}
		})
	}
}
