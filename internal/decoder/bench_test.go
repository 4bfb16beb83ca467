package decoder_test

import (
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

type discardHandler struct{}

func (discardHandler) Begin(uint64, time.Time) error          { return nil }
func (discardHandler) Event(*event.Event) error               { return nil }
func (discardHandler) Commit(uint64, uint64, time.Time) error { return nil }

// BenchmarkDecodeInsert decodes the typical 11-column outbox insert
// (typicalRow: jsonb data, one header, timestamptz) into an event.
func BenchmarkDecodeInsert(b *testing.B) {
	benchInsert(b, "UTF8", typicalRow)
}

// BenchmarkDecodeInsertLatin1 is the same row in a LATIN1 database, with
// one non-ASCII subject to convert.
func BenchmarkDecodeInsertLatin1(b *testing.B) {
	benchInsert(b, "LATIN1", typicalRow.with("subject", "caf\xe9"))
}

func benchInsert(b *testing.B, enc string, row outboxRow) {
	d := newDecoder(b, decoder.Config{ServerEncoding: enc})
	if err := feed(d, &recorder{}, outboxRelation(), beginMsg(txLSN, txTime, 1)); err != nil {
		b.Fatal(err)
	}
	msg := outboxInsert(row)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(txLSN, msg, discardHandler{}); err != nil {
			b.Fatal(err)
		}
	}
}
