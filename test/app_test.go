package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	outboxcdc "github.com/outbox-cdc/outbox-cdc"
	"github.com/outbox-cdc/outbox-cdc/config"
)

// goroutines returns the stacks of every goroutine, by goroutine id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		head, _, _ := bytes.Cut(g, []byte("\n"))
		if f := strings.Fields(string(head)); len(f) > 1 && f[0] == "goroutine" {
			out[f[1]] = string(g)
		}
	}
	return out
}

// ownFrame matches a frame of outbox-cdc's own code (not of its tests) and
// the HTTP server it runs: what Run must have joined before it returns.
var ownFrame = regexp.MustCompile(`(?m)^(github\.com/outbox-cdc/outbox-cdc/[^\n]*|net/http\.\(\*Server\)\.Serve[^\n]*)$`)

// joinFrame matches the supervisor's own wrapper, which is all that is left
// of a goroutine that has returned from its component and is exiting.
var joinFrame = regexp.MustCompile(`^github\.com/outbox-cdc/outbox-cdc/internal/supervise\.`)

// leftRunning returns the stacks of goroutines that are not in before and
// still run outbox-cdc code.
func leftRunning(before map[string]string) []string {
	var left []string
	for id, st := range goroutines() {
		if _, ok := before[id]; ok {
			continue
		}
		own := false
		for _, f := range ownFrame.FindAllString(st, -1) {
			if strings.Contains(f, "_test.") || strings.HasPrefix(f, "github.com/outbox-cdc/outbox-cdc/test.") || joinFrame.MatchString(f) {
				continue
			}
			own = true
		}
		if own {
			left = append(left, st)
		}
	}
	return left
}

// Regression (issue 10): Run returned while goroutines it started still ran:
// the HTTP server and its slot poller, the heartbeat (which could still
// write), retention (whose pool was closed before its context was
// cancelled). Run returns only after every goroutine it started has exited:
// right when it returns none of them is left, with every component on (HTTP,
// heartbeat, retention, per-sink progress with two sinks).
func TestRunJoinsEveryGoroutine(t *testing.T) {
	e := newEnv(t, "")
	addr := httpAddr(t)
	cfg, err := config.Load(e.cfgPath, append(os.Environ(), "OUTBOX_CDC_HTTP_ADDR="+addr, "OUTBOX_CDC_HTTP_SLOT_POLL=100ms",
		"OUTBOX_CDC_HEARTBEAT_INTERVAL=100ms", "OUTBOX_CDC_OUTBOX_RETENTION_AGE=1ms", "OUTBOX_CDC_OUTBOX_RETENTION_INTERVAL=100ms"), nil)
	if err != nil {
		t.Fatal(err)
	}
	gate := &gateSink{}
	gate.release()
	before := goroutines()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, err := outboxcdc.New(ctx, cfg, outboxcdc.Options{Sinks: []outboxcdc.CustomSink{gate.custom("gate")}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) SELECT 'j', '/j', 'a', '{}' FROM generate_series(1, 100)`)
	waitFor(t, 10*time.Second, "the events", func() bool { return e.countLines() >= 100 && gate.count() >= 100 })
	resp, err := http.Get("http://" + addr + "/readyz") // an idle keep-alive connection
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A client that connected and sent nothing yet: the HTTP server's
	// graceful shutdown waits for it.
	quiet, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	time.Sleep(300 * time.Millisecond) // heartbeats, retention rounds and slot polls under way
	cancel()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of the stop")
	}
	left := leftRunning(before) // at once: what Run joined has exited
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(left) > 0 {
		t.Fatalf("%d goroutines outbox-cdc started still run after Run returned:\n\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// The control surface an admin console reads: the snapshot shows the role,
// the slot, the confirmed position and each sink's pending events and
// acknowledged position, before and during Run; pausing an unknown sink is
// named; the effective configuration holds no password.
func TestControlSurface(t *testing.T) {
	e := newEnv(t, "")
	cfg, err := config.Load(e.cfgPath, append(os.Environ(), "OUTBOX_CDC_HTTP_SLOT_POLL=200ms",
		"OUTBOX_CDC_POSTGRES_URL="+strings.Replace(pg.URL(e.db), "postgres@", "postgres:Ctl7Secret@", 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	gate := &gateSink{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, err := outboxcdc.New(ctx, cfg, outboxcdc.Options{Version: "v-test", Sinks: []outboxcdc.CustomSink{gate.custom("gate")}})
	if err != nil {
		t.Fatal(err)
	}
	if s := app.Snapshot(); s.Role != "starting" || s.Slot != "outbox_cdc" || s.Version != "v-test" || len(s.Sinks) != 2 ||
		s.Sinks[0].Name != "audit" || s.Sinks[1].Name != "gate" {
		t.Fatalf("snapshot before Run = %+v", s)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	waitFor(t, 10*time.Second, "streaming", func() bool { return app.Snapshot().Role == "streaming" })
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) SELECT 'c', '/c', 'a', '{}' FROM generate_series(1, 10)`)
	waitFor(t, 10*time.Second, "the gate to hold 10 events", func() bool { return gate.count() == 10 })
	waitFor(t, 10*time.Second, "the snapshot to show them pending at the gate", func() bool {
		s := app.Snapshot()
		return s.InFlightEvents == 10 && s.Sinks[1].Pending == 10 && s.Sinks[0].Pending == 0
	})
	held := app.Snapshot()
	gate.release()
	waitFor(t, 10*time.Second, "the snapshot to show them acknowledged", func() bool {
		s := app.Snapshot()
		return s.InFlightEvents == 0 && s.Sinks[1].Pending == 0 && s.Sinks[1].AcknowledgedLSN != held.Sinks[1].AcknowledgedLSN &&
			s.ConfirmedLSN != "0/0" && s.SlotReadAt.After(held.SlotReadAt) && s.Holder != nil && s.Holder.OutboxCDC
	})
	if err := app.PauseSink("nope"); !errors.Is(err, outboxcdc.ErrUnknownSink) {
		t.Errorf("PauseSink(nope) = %v, want ErrUnknownSink", err)
	}
	shown, err := json.Marshal(app.EffectiveConfig())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(shown), "Ctl7Secret") || !strings.Contains(string(shown), "postgres:xxxxx@") {
		t.Errorf("effective config shows the password, or no masked URL: %s", shown)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s := app.Snapshot(); s.Role != "stopped" {
		t.Errorf("role after Run = %q, want stopped", s.Role)
	}
	if err := app.Run(context.Background()); !errors.Is(err, outboxcdc.ErrClosed) {
		t.Errorf("second Run = %v, want ErrClosed", err)
	}
}
