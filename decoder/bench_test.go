package decoder_test

import (
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
)

type discardHandler struct{}

func (discardHandler) Begin(uint64, time.Time) error          { return nil }
func (discardHandler) Event(*event.Event) error               { return nil }
func (discardHandler) Commit(uint64, uint64, time.Time) error { return nil }

// BenchmarkDecodeInsert decodes the typical 11-column outbox insert
// (typicalRow: jsonb data, one header, timestamptz) into an event.
func BenchmarkDecodeInsert(b *testing.B) {
	d := setup(b)
	msg := outboxInsert(typicalRow)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(txLSN, msg, discardHandler{}); err != nil {
			b.Fatal(err)
		}
	}
}
