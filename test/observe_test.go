package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	outboxcdc "github.com/outbox-cdc/outbox-cdc"
	"github.com/outbox-cdc/outbox-cdc/internal/observe"
	"github.com/outbox-cdc/outbox-cdc/internal/testhook"
)

func httpAddr(t *testing.T) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// metric returns the value of family name for the series with the given
// labels (counter, gauge, or a histogram's count).
func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func mustMetric(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metric(fams, name, labels...)
	if !ok {
		t.Fatalf("metric %s%v not in the scrape", name, labels)
	}
	return v
}

func getReport(t *testing.T, addr, path string) (int, observe.Report) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r observe.Report
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v: %s", path, err, b)
	}
	return resp.StatusCode, r
}

func failing(r observe.Report) string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name+": "+c.Reason)
		}
	}
	return strings.Join(out, "; ")
}

// Acceptance: after streaming a known number of events the scrape shows
// exactly those counts, a latency histogram with that many observations and
// a slot lag near zero.
func TestMetricsCountWhatWasStreamed(t *testing.T) {
	e := newEnv(t, "")
	addr := httpAddr(t)
	p := e.start("OUTBOX_CDC_HTTP_ADDR="+addr, "OUTBOX_CDC_HTTP_SLOT_POLL=200ms")
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	const n = 1234
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) SELECT 'm.test', '/m', 'a' || (g % 7), '{}' FROM generate_series(1, $1::int) g`, n)
	waitFor(t, 10*time.Second, "events", func() bool { return e.countLines() >= n })
	end := e.currentLSN()
	waitFor(t, 10*time.Second, "slot lag near zero", func() bool {
		f := scrape(t, addr)
		lag, ok := metric(f, "outbox_cdc_slot_confirmed_lag_bytes")
		c, _ := e.slot()
		return ok && c >= end && lag < 64<<10
	})
	f := scrape(t, addr)
	for _, m := range []struct {
		name   string
		labels []string
	}{
		{"outbox_cdc_events_decoded_total", nil},
		{"outbox_cdc_events_published_total", []string{"sink", "audit"}},
		{"outbox_cdc_events_acknowledged_total", []string{"sink", "audit"}},
		{"outbox_cdc_ack_latency_seconds", []string{"sink", "audit"}},
	} {
		if v := mustMetric(t, f, m.name, m.labels...); v != n {
			t.Errorf("%s%v = %v, want %d", m.name, m.labels, v, n)
		}
	}
	if v := mustMetric(t, f, "outbox_cdc_state", "state", "streaming"); v != 1 {
		t.Errorf("state{streaming} = %v", v)
	}
	if v := mustMetric(t, f, "outbox_cdc_inflight_events"); v != 0 {
		t.Errorf("inflight_events = %v after everything was acknowledged", v)
	}
	if code, r := getReport(t, addr, "/readyz"); code != 200 {
		t.Errorf("/readyz %d: %s", code, failing(r))
	}
	out, err := e.cliEnv(context.Background(), []string{"OUTBOX_CDC_HTTP_ADDR=" + addr}, "status", "--json")
	if err != nil || !strings.Contains(out, `"state": "streaming"`) {
		t.Errorf("status --json does not show the live instance (%v):\n%s", err, out)
	}
	p.stop(t)
}

// Acceptance: with a sink withholding acknowledgements the lag and retained
// WAL grow and /readyz turns unready with the reason; a hung sink keeps
// /healthz healthy; after release everything recovers.
func TestHungSinkIsVisible(t *testing.T) {
	e := newEnv(t, "")
	addr := httpAddr(t)
	gate := &gateSink{}
	stop := runInProcess(t, e, outboxcdc.Options{Sinks: []outboxcdc.CustomSink{gate.custom("hung")}},
		"OUTBOX_CDC_HTTP_ADDR="+addr, "OUTBOX_CDC_HTTP_SLOT_POLL=100ms", "OUTBOX_CDC_HTTP_SINK_TIMEOUT=1s",
		"OUTBOX_CDC_HTTP_MAX_LAG_BYTES=200000")
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })

	var lags, retained []float64
	for i := 0; i < 4; i++ {
		e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) SELECT 'h.test', '/h', 'a', jsonb_build_object('pad', repeat('x', 200)) FROM generate_series(1, 300)`)
		time.Sleep(300 * time.Millisecond)
		f := scrape(t, addr)
		lags = append(lags, mustMetric(t, f, "outbox_cdc_slot_confirmed_lag_bytes"))
		retained = append(retained, mustMetric(t, f, "outbox_cdc_slot_retained_wal_bytes"))
	}
	for i := 1; i < len(lags); i++ {
		if lags[i] <= lags[i-1] || retained[i] <= retained[i-1] {
			t.Fatalf("lag %v and retained WAL %v do not grow while the sink withholds acknowledgements", lags, retained)
		}
	}
	waitFor(t, 10*time.Second, "/readyz to name the hung sink and the lag", func() bool {
		code, r := getReport(t, addr, "/readyz")
		s := failing(r)
		return code == 503 && strings.Contains(s, "sink:hung: sink hung has") && strings.Contains(s, "no acknowledgement since") &&
			strings.Contains(s, "trails the server's WAL")
	})
	if code, r := getReport(t, addr, "/healthz"); code != 200 {
		t.Fatalf("/healthz = %d with a hung sink (the process is fine): %s", code, failing(r))
	}
	gate.release()
	waitFor(t, 10*time.Second, "/readyz to recover", func() bool { code, _ := getReport(t, addr, "/readyz"); return code == 200 })
	f := scrape(t, addr)
	if v := mustMetric(t, f, "outbox_cdc_slot_confirmed_lag_bytes"); v > 200000 {
		t.Errorf("lag after release = %v", v)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Acceptance: heartbeats keep the slot moving on an idle outbox even without
// keepalive following; with both off the retained WAL grows (the test can see
// the problem).
func TestHeartbeatKeepsIdleSlotMoving(t *testing.T) {
	for _, tc := range []struct {
		name      string
		heartbeat bool
	}{{"heartbeat on", true}, {"heartbeat and keepalive-following off", false}} {
		t.Run(tc.name, func(t *testing.T) {
			if v := needPostgres(t).Version(); !tc.heartbeat && v < 15 {
				t.Skipf("PostgreSQL %d's pgoutput sends every transaction, empty ones too (15 skips them), so the slot follows the busy table's WAL without heartbeats: there is no pinned WAL to see", v)
			}
			e := newEnv(t, "")
			e.exec("CREATE TABLE busy (id serial primary key, v text)")
			env := []string{"OUTBOX_CDC_HEARTBEAT_INTERVAL=200ms"}
			if !tc.heartbeat {
				env = append(env, "OUTBOX_CDC_HEARTBEAT_DISABLED=true")
			}
			stop := runInProcessHooks(t, e, testhook.Hooks{NoKeepaliveFollow: true}, outboxcdc.Options{}, env...)
			waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
			start, _ := e.slot()
			for i := 0; i < 20; i++ {
				e.exec("INSERT INTO busy (v) SELECT repeat('x', 200) FROM generate_series(1, 300)")
				time.Sleep(50 * time.Millisecond)
			}
			target := e.currentLSN()
			if tc.heartbeat {
				waitFor(t, 15*time.Second, "heartbeats to carry the slot past the busy table's WAL", func() bool { c, _ := e.slot(); return c >= target })
			} else {
				time.Sleep(1500 * time.Millisecond)
				if c, _ := e.slot(); c > start {
					t.Fatalf("confirmed_flush_lsn moved from %X to %X with heartbeats and keepalive-following off: the test cannot see pinned WAL", start, c)
				}
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Acceptance: the walsender killed from the server side: the reconnect
// counter increments, /readyz is unready during the gap and ready after, and
// nothing is lost.
func TestWalsenderTerminatedReconnects(t *testing.T) {
	e := newEnv(t, "")
	addr := httpAddr(t)
	p := e.start("OUTBOX_CDC_HTTP_ADDR="+addr, "OUTBOX_CDC_POSTGRES_RECONNECT_INITIAL=3s", "OUTBOX_CDC_POSTGRES_RECONNECT_MAX=3s")
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) SELECT 'r.test', '/r', 'a', jsonb_build_object('agg', 'a', 'seq', g) FROM generate_series(0, 499) g`)
	e.exec("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'outbox_cdc'")
	e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) SELECT 'r.test', '/r', 'a', jsonb_build_object('agg', 'a', 'seq', g) FROM generate_series(500, 999) g`)
	waitFor(t, 5*time.Second, "/readyz to be unready during the gap", func() bool {
		code, r := getReport(t, addr, "/readyz")
		return code == 503 && strings.Contains(failing(r), "replication")
	})
	waitFor(t, 20*time.Second, "/readyz to be ready again", func() bool { code, _ := getReport(t, addr, "/readyz"); return code == 200 })
	if v := mustMetric(t, scrape(t, addr), "outbox_cdc_reconnects_total"); v < 1 {
		t.Fatalf("reconnects_total = %v after the walsender was terminated", v)
	}
	waitFor(t, 20*time.Second, "all events", func() bool { return len(uniqueIDs(e.readEvents())) >= 1000 })
	checkDelivery(t, e.readEvents(), 1000)
	p.stop(t)
}

func uniqueIDs(evs []delivered) map[string]bool {
	m := map[string]bool{}
	for _, d := range evs {
		m[d.ID] = true
	}
	return m
}

// Acceptance: no secret from the config appears in any log line or metric.
func TestSecretsNeverLogged(t *testing.T) {
	e := newEnv(t, "")
	const secret = "s3cr3t-Pw-never-logged"
	addr := httpAddr(t)
	url := strings.Replace(pg.URL(e.db), "postgres@", "postgres:"+secret+"@", 1)
	// A reconnect and a failing heartbeat make the process log errors that
	// carry connection details.
	p := e.start("OUTBOX_CDC_POSTGRES_URL="+url, "OUTBOX_CDC_HTTP_ADDR="+addr, "OUTBOX_CDC_LOG_LEVEL=debug",
		"OUTBOX_CDC_HEARTBEAT_INTERVAL=100ms", "OUTBOX_CDC_LOG_FORMAT=json")
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'outbox_cdc'")
	waitFor(t, 15*time.Second, "reconnect", func() bool { return strings.Contains(p.log(), "reconnecting") })
	waitFor(t, 15*time.Second, "streaming again", func() bool { _, a := e.slot(); return a })
	body, _ := http.Get("http://" + addr + "/metrics")
	b, _ := io.ReadAll(body.Body)
	body.Body.Close()
	st, _ := http.Get("http://" + addr + "/status")
	sb, _ := io.ReadAll(st.Body)
	st.Body.Close()
	p.stop(t)
	// A bad URL on the command line must not echo the password either.
	os.WriteFile(e.dir+"/bad.yaml", []byte(fmt.Sprintf("postgres: {url: %q}\nsinks: [{name: a, type: stdout}]\n",
		"postgres://postgres:"+secret+"@127.0.0.1:1/x?connect_timeout=2")), 0o644)
	bad, _ := execCommand(context.Background(), binary, "run", "--config", e.dir+"/bad.yaml").CombinedOutput()
	for what, text := range map[string]string{"log": p.log(), "metrics": string(b), "status": string(sb), "startup error": string(bad)} {
		if strings.Contains(text, secret) {
			t.Fatalf("the password appears in the %s:\n%s", what, text)
		}
	}
}
