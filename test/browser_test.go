package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

// browser is a headless Debian chromium driven over the DevTools protocol
// (chromedp), with a fresh profile and no network but loopback.
type browser struct {
	t      *testing.T
	ctx    context.Context
	shots  string // screenshot directory
	nshots int
}

// EnvScreenshots names the directory the browser tests write their
// screenshots to; default a new directory under the system's temp dir
// (named in the test's log).
const EnvScreenshots = "OUTBOX_CDC_TEST_SCREENSHOTS"

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		harness.SkipIfNotInstalled(t, "chromium", fmt.Errorf("chromium: %w", harness.ErrNotInstalled))
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // as root
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	dir := os.Getenv(EnvScreenshots)
	if dir == "" {
		if dir, err = os.MkdirTemp("", "outbox-cdc-console-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("console screenshots: %s", dir)
	return &browser{t: t, ctx: ctx, shots: dir}
}

// run runs actions with a deadline.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// text returns the text of the first element sel matches ("" if none).
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
	return s
}

// waitText polls the text of sel until ok holds.
func (b *browser) waitText(timeout time.Duration, what, sel string, ok func(string) bool) string {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := b.text(sel)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
			b.t.Fatalf("browser: timed out after %v waiting for %s: %s is %q", timeout, what, sel, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shot saves a screenshot of the whole page as NN-name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	b.nshots++
	path := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.nshots, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// confirm clicks button sel and then the confirmation dialog's button.
func (b *browser) confirm(sel string) {
	b.t.Helper()
	b.run("click "+sel, chromedp.Click(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS("#confirm-ok")))
	b.run("confirm", chromedp.Click(chromedp.CSS("#confirm-ok")), chromedp.WaitNotVisible(chromedp.CSS("#confirm")))
}

func (b *browser) signIn(base, token string) {
	b.t.Helper()
	b.run("sign in",
		chromedp.Navigate(base+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS("#sign-in-form")),
	)
	b.shot("sign-in")
	b.run("sign in",
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#sign-in-button")),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="lag-bytes"]`)),
	)
}

func (b *browser) open(base, hash, ready string) {
	b.t.Helper()
	b.run("open "+hash, chromedp.Navigate(base+"/admin/"+hash), chromedp.WaitVisible(chromedp.CSS(ready)))
}

// Acceptance (issue 11, 1-3) in a real browser: sign in with a token and see
// the slot's lag and the sinks; pause the file sink, insert rows, see them
// pending and confirmed_flush_lsn held; resume, see them delivered and the
// lag back near zero. An event too large for the Kafka topic is dead-lettered:
// found by its id, its Kafka view shows the ce_ headers, the broker's error
// is shown, a replay after raising the limit delivers it exactly once and
// its state becomes replayed. Every page's screenshot is kept (see the log).
func TestConsoleInBrowser(t *testing.T) {
	b := newBrowser(t)
	tt := t
	k := kafkaBroker(t).(*kafkaKit)
	bus := k.sinkYAML("bus") + "\n      topic_config: {max.message.bytes: \"4096\"}\n    policy: dead-letter\n    retry: {initial: 200ms, max: 1s}"
	e, addr := consoleEnv(t, nil, fmt.Sprintf("  - {name: audit, type: file, path: %q}", filepath.Join(t.TempDir(), "events.jsonl")), bus)
	e.outPath = readSinkPath(t, e.cfgPath)
	p := e.start()
	base := "http://" + addr
	waitFor(t, 30*time.Second, "streaming", func() bool { _, a := e.slot(); return a || p.hasExited() })
	if p.hasExited() {
		t.Fatalf("run exited: %v\n%s", p.err, tail(p.log(), 30))
	}
	e.exec(`INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data) SELECT 'order.created', '/shop', 'order', 'o-' || g, jsonb_build_object('agg', 'o-' || g, 'seq', 0) FROM generate_series(1, 20) g`)
	waitFor(t, 30*time.Second, "the first events", func() bool { return len(e.readEvents()) == 20 })

	// 1. Sign in; the overview shows the slot and the sinks.
	b.signIn(base, operatorToken)
	b.waitText(10*time.Second, "the role", `[data-testid="role"]`, func(s string) bool { return s == "streaming" })
	b.waitText(10*time.Second, "the sinks", "#sinks-table", func(s string) bool { return strings.Contains(s, "audit") && strings.Contains(s, "bus") })
	time.Sleep(4 * time.Second) // a few points of the chart
	b.open(base, "#/overview", `[data-testid="lag-bytes"]`)
	b.shot("overview")
	b.open(base, "#/sinks", "#pause-audit")
	b.shot("sinks")

	t.Run("pause and resume", func(t *testing.T) {
		b.t = t
		defer func() { b.t = tt }()
		// Pause the file sink: rows stay pending, the slot holds.
		b.open(base, "#/sinks", "#pause-audit")
		b.confirm("#pause-audit")
		pauseOut := b.waitText(10*time.Second, "the pause", "#flash", func(s string) bool { return s != "" })
		if !strings.Contains(pauseOut, "paused") {
			t.Fatalf("the pause answered %q", pauseOut)
		}
		b.waitText(10*time.Second, "audit paused", `tr[data-sink="audit"] [data-state]`, func(s string) bool { return s == "paused" })
		// The slot may follow the server's WAL up to the first held event
		// (PostgreSQL 14 sends empty transactions too), never past it.
		held := e.currentLSN()
		e.exec(`INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data) SELECT 'order.paid', '/shop', 'order', 'o-' || g, jsonb_build_object('agg', 'o-' || g, 'seq', CASE WHEN g <= 20 THEN 1 ELSE 0 END) FROM generate_series(1, 30) g`)
		b.waitText(20*time.Second, "30 events pending for audit", `[data-testid="pending-audit"]`, func(s string) bool { return s == "30" })
		time.Sleep(time.Second)
		if c, _ := e.slot(); c > held {
			t.Fatalf("confirmed_flush_lsn moved to %X, past %X (the WAL before the held events), while the sink was paused", c, held)
		}
		if n := len(e.readEvents()); n != 20 {
			t.Fatalf("the paused sink wrote %d events, want 20", n)
		}
		b.shot("sinks-paused")

		// Resume: delivered, the lag back near zero.
		b.run("resume", chromedp.Click(chromedp.CSS("#resume-audit")))
		waitFor(t, 30*time.Second, "the paused events", func() bool { return len(e.readEvents()) == 50 })
		checkDelivery(t, e.readEvents(), 50)
		end := e.currentLSN()
		waitFor(t, 30*time.Second, "the slot to catch up", func() bool { c, _ := e.slot(); return c >= end })
		b.open(base, "#/overview", `[data-testid="lag-bytes"]`)
		b.waitText(20*time.Second, "the lag near zero", `#lag-bytes .sub`, func(s string) bool {
			n, err := strconv.Atoi(strings.Fields(s + " x")[0])
			return err == nil && n < 64<<10
		})
	})

	// 2. A dead letter: too large for the topic.
	const big = "00000000-0000-0000-0000-0000000c0b16"
	e.exec(`INSERT INTO outbox (id, type, source, aggregate_type, aggregate_id, data) VALUES ($1, 'order.big', '/shop', 'order', 'o-big', jsonb_build_object('pad', repeat('x', 20000)))`, big)
	waitFor(t, time.Minute, "the dead letter", func() bool { return len(e.letters(t)) == 1 })

	// Found by its id; the Kafka view shows the ce_ headers.
	b.open(base, "#/events", "#event-search")
	b.run("search by id", chromedp.SendKeys(chromedp.CSS("#f-id"), big), chromedp.Click(chromedp.CSS("#search-button")))
	b.waitText(10*time.Second, "the search result", "#events-table tbody", func(s string) bool { return strings.Contains(s, big) })
	b.shot("events-search")
	b.run("open the event", chromedp.Click(chromedp.CSS("#events-table tbody a")), chromedp.WaitVisible(chromedp.CSS("#binding-bus")))
	view := b.text("#binding-bus")
	for _, h := range []string{"ce_specversion", "ce_id" + big, "ce_type" + "order.big", "ce_source/shop", "key" + "o-big", "topic" + k.topic} {
		if !strings.Contains(view, h) {
			t.Errorf("the Kafka view does not show %q:\n%.600s", h, view)
		}
	}
	b.shot("event-detail")

	// Its broker error is shown; replay after raising the limit.
	b.open(base, "#/dead-letters?q="+big, "#letters-table")
	b.waitText(10*time.Second, "the letter", "#letters-table tbody", func(s string) bool { return strings.Contains(s, big) })
	b.shot("dead-letters")
	b.run("open the letter", chromedp.Click(chromedp.CSS("#letters-table tbody a")), chromedp.WaitVisible(chromedp.CSS("#letter-error")))
	if s := b.text("#letter-error"); !strings.Contains(s, "MESSAGE_TOO_LARGE") {
		t.Errorf("the letter's error does not show the broker's: %q", s)
	}
	b.shot("dead-letter")
	kafkaTopicLimit(t, k, 1<<20)
	b.confirm("#replay-letter")
	b.waitText(time.Minute, "the replay", "#letter-state", func(s string) bool { return s == "replayed" })
	n := 0
	for _, r := range k.readAll(t) {
		if r.ce.ID() == big {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the replayed event is in the topic %d times, want 1", n)
	}
	if l := e.letters(t)[0]; l.status != "replayed" {
		t.Errorf("after replay the letter is %q", l.status)
	}
	b.shot("dead-letter-replayed")
	p.stop(t)
}

// readSinkPath returns the path of the file sink audit in a config.
func readSinkPath(t *testing.T, cfg string) string {
	t.Helper()
	for _, line := range strings.Split(readFile(t, cfg), "\n") {
		if strings.Contains(line, "name: audit") {
			_, rest, _ := strings.Cut(line, "path: ")
			s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(rest), "}"))
			if err == nil {
				return s
			}
		}
	}
	t.Fatal("no file sink audit in the config")
	return ""
}
