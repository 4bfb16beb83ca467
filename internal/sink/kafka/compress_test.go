package kafka

import (
	"bytes"
	"io"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestLZ4Compressor checks that the sink's lz4 codec (256 KiB frame blocks)
// round-trips a record batch of about 1 MB (Kafka's default
// max.message.bytes) of outbox events and compresses it within 3% of
// franz-go's own lz4 codec (4 MiB blocks).
func TestLZ4Compressor(t *testing.T) {
	var src []byte
	for _, e := range benchEvents(4096) {
		src = e.AppendJSON(src)
		if len(src) > 1000000 {
			break
		}
	}
	ours, codec := newLZ4Compressor().Compress(new(bytes.Buffer), src)
	if codec != kgo.CodecLz4 || ours == nil {
		t.Fatalf("Compress returned codec %v, %d bytes", codec, len(ours))
	}
	back, err := io.ReadAll(lz4.NewReader(bytes.NewReader(ours)))
	if err != nil || !bytes.Equal(back, src) {
		t.Fatalf("round trip: err %v, %d of %d bytes equal", err, len(back), len(src))
	}
	def, err := kgo.DefaultCompressor(kgo.Lz4Compression())
	if err != nil {
		t.Fatal(err)
	}
	theirs, _ := def.Compress(new(bytes.Buffer), src)
	if float64(len(ours)) > 1.03*float64(len(theirs)) {
		t.Errorf("256 KiB blocks: %d bytes; franz-go's 4 MiB blocks: %d bytes (of %d)", len(ours), len(theirs), len(src))
	}
	t.Logf("%d bytes -> %d (256 KiB blocks), %d (4 MiB blocks)", len(src), len(ours), len(theirs))
}
