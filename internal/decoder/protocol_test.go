package decoder_test

import (
	"errors"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// validMessages are one of each message the decoder parses, valid in the
// state setup() leaves (relation known, transaction open).
func validMessages() map[string][]byte {
	return map[string][]byte{
		"begin":    beginMsg(txLSN, txTime, 9),
		"commit":   commitMsg(txLSN, txEnd, txTime),
		"relation": outboxRelation(),
		"insert":   outboxInsert(typicalRow),
		"message":  logicalMsg(true, txLSN-8, "outbox", `{"id":"1","type":"t","source":"/s","data":{"a":1}}`),
	}
}

// setup returns a decoder that knows the outbox relation and is inside a
// transaction.
func setup(tb interface {
	Helper()
	Fatalf(string, ...any)
}) *decoder.Decoder {
	tb.Helper()
	d := newDecoder(tb, decoder.Config{})
	if err := feed(d, &recorder{}, outboxRelation(), beginMsg(txLSN, txTime, 1)); err != nil {
		tb.Fatalf("setup: %v", err)
	}
	return d
}

// TestDecodeTruncated cuts every parsed message at every length: each cut is
// ErrProtocol, never a panic, and the handler hears nothing.
func TestDecodeTruncated(t *testing.T) {
	t.Parallel()
	for name, msg := range validMessages() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := setup(t).Decode(txLSN, msg, &recorder{}); err != nil {
				t.Fatalf("the whole message fails: %v", err)
			}
			for n := 1; n < len(msg); n++ {
				h := &recorder{}
				err := setup(t).Decode(txLSN, msg[:n:n], h)
				if !errors.Is(err, decoder.ErrProtocol) {
					t.Errorf("cut at %d of %d: error = %v, want ErrProtocol", n, len(msg), err)
				}
				if len(h.calls) != 0 {
					t.Errorf("cut at %d of %d: handler called %v", n, len(msg), h.calls)
				}
			}
		})
	}
}

func TestDecodeProtocolErrors(t *testing.T) {
	t.Parallel()
	insertKind := outboxInsert(typicalRow)
	insertKind[5] = 'K' // an insert carries a new tuple, 'N'
	badColumnKind := outboxInsert(typicalRow)
	badColumnKind[8] = 'x' // the first column's kind
	for _, tc := range []struct {
		name string
		msgs [][]byte
	}{
		{"empty message", [][]byte{{}}},
		{"commit without begin", [][]byte{commitMsg(txLSN, txEnd, txTime)}},
		{"commit twice", [][]byte{beginMsg(txLSN, txTime, 1), commitMsg(txLSN, txEnd, txTime), commitMsg(txLSN, txEnd, txTime)}},
		{"insert outside a transaction", [][]byte{outboxRelation(), outboxInsert(typicalRow)}},
		{"insert tuple kind", [][]byte{outboxRelation(), beginMsg(txLSN, txTime, 1), insertKind}},
		{"unknown column kind", [][]byte{outboxRelation(), beginMsg(txLSN, txTime, 1), badColumnKind}},
		{"column length past the end", [][]byte{outboxRelation(), beginMsg(txLSN, txTime, 1),
			wire{'I'}.u32(outboxRelID).u8('N').u16(1).u8('t').u32(1000).str("x")}},
		{"message length past the end", [][]byte{beginMsg(txLSN, txTime, 1),
			wire{'M'}.u8(1).u64(txLSN).str("outbox").u32(1 << 30)}},
		{"unterminated prefix", [][]byte{beginMsg(txLSN, txTime, 1), wire{'M'}.u8(1).u64(txLSN).u8('o')}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := feed(newDecoder(t, decoder.Config{}), &recorder{}, tc.msgs...)
			if !errors.Is(err, decoder.ErrProtocol) {
				t.Errorf("error = %v, want ErrProtocol", err)
			}
			var de *decoder.Error
			if errors.As(err, &de) {
				t.Errorf("a protocol error is also a *decoder.Error: %v", err)
			}
		})
	}
}
