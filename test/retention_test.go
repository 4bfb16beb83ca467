package test

import (
	"testing"
	"time"

	outboxcdc "github.com/outbox-cdc/outbox-cdc"
)

// Acceptance: retention prunes only rows every sink acknowledged; a blocked
// sink's rows stay until it acknowledges them.
func TestRetentionPrunesOnlyAcknowledgedRows(t *testing.T) {
	e := newEnv(t, "")
	gate := &gateSink{}
	gate.release() // acknowledge at once for now
	count := func() int {
		var n int
		if err := e.pool.QueryRow(t.Context(), "SELECT count(*) FROM outbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	stop := runInProcess(t, e, outboxcdc.Options{Sinks: []outboxcdc.CustomSink{gate.custom("gate")}},
		"OUTBOX_CDC_OUTBOX_RETENTION_AGE=1ms", "OUTBOX_CDC_OUTBOX_RETENTION_INTERVAL=200ms",
		"OUTBOX_CDC_HEARTBEAT_INTERVAL=200ms", "OUTBOX_CDC_POSTGRES_STATUS_INTERVAL=100ms")
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, data) SELECT 'r', '/r', '{}' FROM generate_series(1, 100)`)
	waitFor(t, 15*time.Second, "acknowledged rows to be pruned", func() bool { return count() == 0 })

	gate.mu.Lock()
	gate.open = false
	gate.mu.Unlock()
	e.exec(`INSERT INTO outbox (type, source, data) SELECT 'r', '/r', '{}' FROM generate_series(1, 50)`)
	waitFor(t, 10*time.Second, "the gate to hold the new events", func() bool { return gate.count() >= 150 })
	time.Sleep(2 * time.Second) // many pruning rounds, heartbeats acknowledged meanwhile
	if n := count(); n != 50 {
		t.Fatalf("%d rows left while the sink holds 50 unacknowledged: retention touched unacknowledged rows", n)
	}
	gate.release()
	waitFor(t, 15*time.Second, "the released rows to be pruned", func() bool { return count() == 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
