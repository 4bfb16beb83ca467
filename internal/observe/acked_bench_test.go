package observe

import (
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// BenchmarkAcked is the per-event cost of counting an acknowledgement: it
// runs once per event and sink on the relay's hot path.
func BenchmarkAcked(b *testing.B) {
	m := NewMetrics("bench", "slot")
	m.AddSink("s")
	e := &event.Event{ID: "1", CommitTime: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		m.Acked("s", e)
	}
}
