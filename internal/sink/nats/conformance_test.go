package nats

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// TestConformance runs the sink conformance suite against a JetStream
// stream, with strict and relaxed order. The event it can never deliver is
// larger than the server's max_payload; a proxy that holds the server's
// replies holds the acknowledgements.
func TestConformance(t *testing.T) {
	t.Parallel()
	srv := startNATS(t, harness.NATSOptions{MaxPayload: 8192})
	for _, relaxed := range []bool{false, true} {
		name := "strict"
		if relaxed {
			name = "relaxed"
		}
		t.Run(name, func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T) sinktest.Destination {
				var b [4]byte
				_, _ = rand.Read(b[:])
				stream := "CT_" + strings.ToUpper(hex.EncodeToString(b[:]))
				px := newProxy(t, srv.Addr())
				return sinktest.Destination{
					Open: func(t *testing.T, opts sink.Options) sink.Sink {
						cfg := baseConfig(px.url())
						cfg.Stream = StreamConfig{Name: stream, Create: true, Subjects: []string{stream + ".>"}}
						cfg.Subject = stream + ".{{.AggregateType}}"
						cfg.RelaxedOrder = relaxed
						s, err := New(ctxTimeout(t, 30*time.Second), cfg, opts)
						if err != nil {
							t.Fatal(err)
						}
						return s
					},
					Read: func(t *testing.T, _ int) []string {
						var ids []string
						for _, m := range readStream(t, srv.URL(), stream) {
							ev, err := decode(m)
							if err != nil {
								t.Fatal(err)
							}
							ids = append(ids, ev.ID())
						}
						return ids
					},
					Dedup: true,
					Poison: func(e *event.Event) {
						e.DataKind, e.Data = event.DataBinary, make([]byte, 16<<10)
					},
					Hold: func(t *testing.T) func() {
						px.hold(true)
						return func() { px.hold(false) }
					},
				}
			})
		})
	}
}
