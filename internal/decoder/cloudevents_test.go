package decoder_test

import (
	"encoding/json"
	"slices"
	"testing"

	ce "github.com/cloudevents/sdk-go/v2/event"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// TestDecodedEventsAreValidCloudEvents runs decoded rows and messages through
// the CloudEvents SDK: whatever the decoder accepts must be a valid event.
func TestDecodedEventsAreValidCloudEvents(t *testing.T) {
	t.Parallel()
	textCols := slices.Clone(outboxCols)
	textCols[6].oid = oidText
	byteaCols := slices.Clone(outboxCols)
	byteaCols[6].oid = oidBytea
	for _, tc := range []struct {
		name string
		cols []relCol
		msg  []byte
	}{
		{"typical row", outboxCols, outboxInsert(typicalRow)},
		{"minimal row", outboxCols, outboxInsert(outboxRow{"id": "1", "type": "t", "source": "/s"})},
		{"text data", textCols, insertMsg(outboxRelID, typicalRow.with("datacontenttype", "text/plain", "data", "caf\u00e9 \"quoted\"\n").vals(textCols)...)},
		{"binary data", byteaCols, insertMsg(outboxRelID, typicalRow.with("datacontenttype", "application/octet-stream", "data", `\x00ff10`).vals(byteaCols)...)},
		{"headers of every scalar kind", outboxCols, outboxInsert(typicalRow.with("headers", `{"s": "x", "n": -1, "f": 2.5, "b": false}`))},
		{"message", outboxCols, logicalMsg(true, txLSN-8, "outbox", fullMessage)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := newDecoder(t, decoder.Config{})
			h := &recorder{}
			err := feed(d, h, relationMsg(outboxRelID, "public", "outbox", tc.cols), beginMsg(txLSN, txTime, 1), tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			out := h.events[0].AppendJSON(nil)
			var got ce.Event
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("SDK cannot read %s: %v", out, err)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("SDK says %s is invalid: %v", out, err)
			}
			if got.ID() != h.events[0].ID || got.Extensions()[decoder.ExtLSN] != "16/B374D848" {
				t.Errorf("SDK read id %q pglsn %v", got.ID(), got.Extensions()[decoder.ExtLSN])
			}
		})
	}
}
