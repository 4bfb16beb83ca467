package test

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shutdownDrain is the drain_timeout of these tests.
const shutdownDrain = 2 * time.Second

// shutdownGrace is how much longer than drain_timeout a stop may take: the
// last status update, closing the sinks and saving progress.
const shutdownGrace = 2 * time.Second

// terminate sends SIGTERM and returns how long the process took to exit; it
// must exit 0 within drain_timeout and the grace.
func terminate(t *testing.T, p *proc) time.Duration {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(shutdownDrain + shutdownGrace + time.Minute):
		t.Fatal("outbox-cdc did not stop within a minute of SIGTERM")
	}
	took := time.Since(start)
	if took > shutdownDrain+shutdownGrace {
		t.Errorf("outbox-cdc took %v to stop after SIGTERM; drain_timeout is %v", took.Round(100*time.Millisecond), shutdownDrain)
	}
	if p.err != nil {
		t.Errorf("outbox-cdc exited with %v after SIGTERM", p.err)
	}
	return took
}

var unconfirmedLine = regexp.MustCompile(`msg="stopped with events unconfirmed[^"]*".* events=(\d+) transactions=(\d+) confirmed=[0-9A-F]+/[0-9A-F]+`)

// checkUnconfirmed asserts that the log says what the stop left unconfirmed.
func checkUnconfirmed(t *testing.T, log string, events, txs string) {
	t.Helper()
	m := unconfirmedLine.FindStringSubmatch(log)
	if m == nil || m[1] != events || m[2] != txs {
		t.Errorf("the log does not say what was left unconfirmed (want events=%s transactions=%s and the confirmed LSN):\n%s", events, txs, tail(log, 15))
		return
	}
	t.Log(m[0])
}

// Regression (issue 9): with a blocked sink SIGTERM took about 40 s
// (drain_timeout 30 s, then 10 s more while the sink kept reconnecting),
// longer than a container platform's default grace period. run exits within
// drain_timeout and a little more whatever the sinks do, and says what it
// left unconfirmed.
func TestStopFitsDrainTimeout(t *testing.T) {
	for _, get := range allBrokers(t) {
		b := get(t)
		t.Run(b.name()+"-stopped", func(t *testing.T) {
			e := brokerEnv(t, b.sinkYAML("bus"))
			p := e.start("OUTBOX_CDC_POSTGRES_DRAIN_TIMEOUT=" + shutdownDrain.String())
			waitFor(t, 20*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
			e.exec(readyRows)
			waitFor(t, time.Minute, "the first events", func() bool { return len(b.readAll(t)) >= 10 })
			b.stop(t)
			restarted := false
			t.Cleanup(func() {
				if !restarted {
					b.start(t) // shared with later tests
				}
			})
			e.exec(readyRows)
			time.Sleep(time.Second) // the sink is retrying now
			took := terminate(t, p)
			t.Logf("%s down: stopped in %v", b.name(), took.Round(100*time.Millisecond))
			checkUnconfirmed(t, p.log(), "10", "1")
			b.start(t)
			restarted = true
		})
	}
	t.Run("blocked", func(t *testing.T) {
		k := kafkaBroker(t).(*kafkaKit)
		e := brokerEnv(t, k.sinkYAML("bus")+"\n      topic_config: {max.message.bytes: \"4096\"}\n    policy: block\n    retry: {initial: 200ms, max: 1s}")
		p := e.start("OUTBOX_CDC_POSTGRES_DRAIN_TIMEOUT=" + shutdownDrain.String())
		waitFor(t, 20*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
		e.exec(`INSERT INTO outbox (type, source, aggregate_id, data) VALUES ('big', '/t', 'b', jsonb_build_object('pad', repeat('x', 20000)))`)
		e.exec(readyRows)
		waitFor(t, time.Minute, "the sink to block", func() bool { return strings.Contains(p.log(), "sink blocked") })
		time.Sleep(time.Second) // retrying
		took := terminate(t, p)
		t.Logf("blocked: stopped in %v", took.Round(100*time.Millisecond))
		checkUnconfirmed(t, p.log(), "11", "2")
	})
}
