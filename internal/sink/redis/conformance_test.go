package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// TestConformance runs the sink conformance suite against Redis streams, in
// the "entryid" and "guard" dedup modes. The event the sink can never
// deliver is, with "guard", one for a key that holds a string (WRONGTYPE,
// found when sent); with "entryid" one with an extension named like an
// entry field (found when encoded): there a later event of the same stream
// stored before the fixed one is resent would make its entry id conflict,
// which a fix that keeps the stream cannot cause. CLIENT PAUSE WRITE holds
// what the sink sends.
func TestConformance(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	for _, dedup := range []string{DedupEntryID, DedupGuard} {
		t.Run(dedup, func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T) sinktest.Destination {
				var b [4]byte
				_, _ = rand.Read(b[:])
				prefix := "ct:" + hex.EncodeToString(b[:]) + ":"
				srv.do(t, "SET", prefix+"poison", "not a stream")
				return sinktest.Destination{
					Open: func(t *testing.T, opts sink.Options) sink.Sink {
						s, err := New(context.Background(), Config{
							Address: srv.addr(), Stream: prefix + "{{.AggregateType}}", Dedup: dedup,
							BatchSize: 16, Retry: retryFast,
						}, opts)
						if err != nil {
							t.Fatal(err)
						}
						return s
					},
					Read: func(t *testing.T, _ int) []string {
						var ids []string
						for _, en := range readStream(t, srv.client(t), prefix+"orders") {
							got, err := decodeBinary(en)
							if err != nil {
								t.Fatal(err)
							}
							ids = append(ids, got.ID())
						}
						return ids
					},
					Dedup: true,
					Poison: func(e *event.Event) {
						if dedup == DedupGuard {
							e.AggregateType = "poison"
							return
						}
						e.Extensions = append(e.Extensions, event.Extension{Name: FieldData, Value: "clash"})
					},
					Hold: func(t *testing.T) func() {
						srv.do(t, "CLIENT", "PAUSE", "60000", "WRITE")
						return func() {
							srv.do(t, "CLIENT", "UNPAUSE")
							time.Sleep(50 * time.Millisecond)
						}
					},
				}
			})
		})
	}
}
