package decoder_test

import (
	"errors"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// FuzzDecode feeds arbitrary bytes to a decoder that knows the outbox relation
// and is inside a transaction (the state in which most of the parser is
// reachable), then to a fresh one. It must never panic, and every error must
// be ErrProtocol or a *decoder.Error. Events it emits must carry the required
// attributes.
func FuzzDecode(f *testing.F) {
	for _, m := range validMessages() {
		f.Add(m)
	}
	f.Add(logicalMsg(true, txLSN-8, "outbox", fullMessage))
	f.Add(logicalMsg(true, txLSN-8, decoder.DefaultHeartbeatPrefix, "{}"))
	f.Add(outboxInsert(typicalRow.with("headers", `{"a": 1, "b": "x"}`)))
	f.Add(outboxInsert(outboxRow{"id": "1", "type": "t", "source": "/s"}))
	f.Add(insertMsg(outboxRelID, val{kind: 'u'}))
	f.Add(originMsg(1, "o"))
	f.Add(typeMsg(70000, "public", "mood"))
	f.Add(relationMsg(outboxRelID, "public", "outbox", append(outboxCols[:2:2], relCol{name: "created_at", oid: oidDate})))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, msg []byte) {
		check := func(d *decoder.Decoder) {
			h := &recorder{onEvent: func(e *event.Event) error {
				if e.ID == "" || e.Type == "" || e.Source == "" {
					t.Errorf("event without id, type or source: %+v", e)
				}
				if _, ok := e.Extension(decoder.ExtLSN); !ok {
					t.Errorf("event without %s: %+v", decoder.ExtLSN, e)
				}
				return nil
			}}
			err := d.Decode(txLSN, msg, h)
			if err == nil {
				return
			}
			var de *decoder.Error
			switch {
			case errors.Is(err, decoder.ErrProtocol):
			case errors.As(err, &de):
				if de.Table == "" || de.Reason == "" {
					t.Errorf("*Error without table or reason: %+v", de)
				}
			default:
				t.Errorf("error %v (%T) is neither ErrProtocol nor *decoder.Error", err, err)
			}
		}
		check(setup(t))
		check(newDecoder(t, decoder.Config{}))
	})
}
