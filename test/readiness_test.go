package test

import (
	"strings"
	"testing"
	"time"

	outboxcdc "github.com/outbox-cdc/outbox-cdc"
)

// readySinkTimeout is the http.sink_timeout of these tests: short, so that a
// few of them pass while the stream idles.
const readySinkTimeout = time.Second

// idleThenReady waits until nothing is in flight and every event handed to
// the sink was acknowledged (or stored as a dead letter), then checks that
// /readyz stays 200 while the stream idles for four sink timeouts.
func idleThenReady(t *testing.T, addr, sinkName string, deadLetters int) {
	t.Helper()
	waitFor(t, 30*time.Second, "nothing in flight", func() bool {
		f := scrape(t, addr)
		pub := mustMetric(t, f, "outbox_cdc_events_published_total", "sink", sinkName)
		acked := mustMetric(t, f, "outbox_cdc_events_acknowledged_total", "sink", sinkName)
		dead := mustMetric(t, f, "outbox_cdc_events_dead_lettered_total", "sink", sinkName)
		return mustMetric(t, f, "outbox_cdc_inflight_events") == 0 && pub > 0 && acked+dead == pub && dead == float64(deadLetters)
	})
	for deadline := time.Now().Add(4 * readySinkTimeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if code, r := getReport(t, addr, "/readyz"); code != 200 {
			t.Fatalf("/readyz = %d on an idle stream with everything acknowledged or dead-lettered: %s", code, failing(r))
		}
	}
}

func readyEnv(t *testing.T, e *env) (*proc, string) {
	t.Helper()
	addr := httpAddr(t)
	p := e.start("OUTBOX_CDC_HTTP_ADDR="+addr, "OUTBOX_CDC_HTTP_SINK_TIMEOUT="+readySinkTimeout.String())
	waitFor(t, 20*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	return p, addr
}

const readyRows = `INSERT INTO outbox (type, source, aggregate_type, aggregate_id, data)
	SELECT 'ready', '/t', 'o', 'a', jsonb_build_object('agg', 'a', 'seq', g) FROM generate_series(0, 9) g`

// Regression (issue 9): a healthy idle sink turned /readyz 503 ("sink f has 1
// events unacknowledged") a sink timeout after its last event, with nothing
// in flight: the sink acknowledged inside Publish, before the fan-out counted
// the batch as pending. The same for a sink whose only event was stored as a
// dead letter. For every sink type, an idle stream with everything
// acknowledged or dead-lettered stays ready however long it idles.
func TestReadyWhileIdle(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		e := newEnv(t, "")
		p, addr := readyEnv(t, e)
		e.exec(readyRows)
		waitFor(t, 20*time.Second, "the events", func() bool { return e.countLines() >= 10 })
		idleThenReady(t, addr, "audit", 0)
		p.stop(t)
	})
	for _, get := range allBrokers(t) {
		b := get(t)
		t.Run(b.name(), func(t *testing.T) {
			e := brokerEnv(t, b.sinkYAML("bus"))
			p, addr := readyEnv(t, e)
			e.exec(readyRows)
			waitFor(t, time.Minute, "the events", func() bool { return len(b.readAll(t)) >= 10 })
			idleThenReady(t, addr, "bus", 0)
			p.stop(t)
		})
	}
	t.Run("dead-letter", func(t *testing.T) {
		k := kafkaBroker(t).(*kafkaKit)
		e := brokerEnv(t, k.sinkYAML("bus")+"\n      topic_config: {max.message.bytes: \"4096\"}\n    policy: dead-letter")
		p, addr := readyEnv(t, e)
		e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('big', '/t', 'b', jsonb_build_object('pad', repeat('x', 20000)))`)
		waitFor(t, time.Minute, "the dead letter", func() bool { return len(e.letters(t)) == 1 })
		idleThenReady(t, addr, "bus", 1)
		p.stop(t)
	})
}

// The other half: a sink that really withholds its acknowledgements still
// turns /readyz 503, naming it.
func TestNotReadyWhileAcksWithheld(t *testing.T) {
	e := newEnv(t, "")
	addr := httpAddr(t)
	gate := &gateSink{}
	stop := runInProcess(t, e, outboxcdc.Options{Sinks: []outboxcdc.CustomSink{gate.custom("gate")}},
		"OUTBOX_CDC_HTTP_ADDR="+addr, "OUTBOX_CDC_HTTP_SINK_TIMEOUT="+readySinkTimeout.String(), "OUTBOX_CDC_POSTGRES_DRAIN_TIMEOUT=1s")
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(readyRows)
	waitFor(t, 10*time.Second, "the gate to hold the events", func() bool { return gate.count() >= 10 })
	waitFor(t, 10*time.Second, "/readyz to name the sink withholding acknowledgements", func() bool {
		code, r := getReport(t, addr, "/readyz")
		return code == 503 && strings.Contains(failing(r), "sink:gate: sink gate has 10 events unacknowledged")
	})
	if code, r := getReport(t, addr, "/readyz"); code != 503 || strings.Contains(failing(r), "sink:audit") {
		t.Fatalf("/readyz = %d: %s; want only the gate failing", code, failing(r))
	}
	gate.release()
	waitFor(t, 10*time.Second, "/readyz to recover", func() bool { code, _ := getReport(t, addr, "/readyz"); return code == 200 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
