package kafka

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestLZ4Compressor checks that the sink's lz4 codec (256 KiB frame blocks)
// round-trips a record batch of about 1 MB (Kafka's default
// max.message.bytes) of outbox events and compresses it within 3% of
// franz-go's own lz4 codec (4 MiB blocks).
func TestLZ4Compressor(t *testing.T) {
	src := eventBatch(1000000)
	ours := lz4RoundTrip(t, new(bytes.Buffer), src)
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

// TestLZ4CompressorBlocks round-trips inputs around the block size, and
// incompressible ones (stored blocks), through a reused, non-empty buffer
// as franz-go's pooled buffers may be.
func TestLZ4CompressorBlocks(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	text := func(n int) []byte { return bytes.Repeat([]byte(`{"seq":1,"payload":"abc"}`), n/25+1)[:n] }
	// Random runs each written twice compress to a little over half.
	var halves []byte
	for len(halves) < lz4BlockSize {
		r := random(100)
		halves = append(append(halves, r...), r...)
	}
	mixed := append(text(lz4BlockSize), random(lz4BlockSize)...)
	mixed = append(mixed, text(1000)...)
	dst := bytes.NewBufferString("left over")
	for name, src := range map[string][]byte{
		"empty":            {},
		"one byte":         {'x'},
		"block":            text(lz4BlockSize),
		"block+1":          text(lz4BlockSize + 1),
		"3 blocks":         text(3*lz4BlockSize + 17),
		"random":           random(1000),
		"random blocks":    random(2*lz4BlockSize + 5),
		"text,random,text": mixed,
		"halves":           halves,
	} {
		t.Run(name, func(t *testing.T) {
			dst.Reset()
			dst.WriteString("prefix")
			got := lz4RoundTrip(t, dst, src)
			if name == "halves" {
				// The first block, compressed, is over half its size:
				// the second attempt's.
				size := binary.LittleEndian.Uint32(got[len(lz4FrameHeader):])
				if size>>31 != 0 || int(size) <= lz4BlockSize/2 || int(size) >= lz4BlockSize {
					t.Errorf("first block: size word %#x, want compressed, between half and all of %d", size, lz4BlockSize)
				}
			}
			if !bytes.HasPrefix(dst.Bytes(), []byte("prefix")) || !bytes.Equal(dst.Bytes()[len("prefix"):], got) {
				t.Error("Compress did not append its frame to dst")
			}
		})
	}
}

// TestLZ4FrameHeader checks the frame header against pierrec/lz4's Writer
// with the same settings.
func TestLZ4FrameHeader(t *testing.T) {
	var b bytes.Buffer
	w := lz4.NewWriter(&b)
	if err := w.Apply(lz4.BlockSizeOption(lz4.Block256Kb), lz4.ChecksumOption(false)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := b.Bytes()[:len(lz4FrameHeader)]; !bytes.Equal(got, lz4FrameHeader[:]) {
		t.Errorf("pierrec/lz4 writes header % x, we write % x", got, lz4FrameHeader)
	}
}

// lz4RoundTrip compresses src into dst, checks that pierrec/lz4's Reader
// gives src back, and returns the frame.
func lz4RoundTrip(t *testing.T, dst *bytes.Buffer, src []byte) []byte {
	t.Helper()
	frame, codec := newLZ4Compressor().Compress(dst, src)
	if codec != kgo.CodecLz4 || frame == nil {
		t.Fatalf("Compress returned codec %v, %d bytes", codec, len(frame))
	}
	back, err := io.ReadAll(lz4.NewReader(bytes.NewReader(frame)))
	if err != nil || !bytes.Equal(back, src) {
		t.Fatalf("round trip of %d bytes: err %v, got %d bytes, equal %v", len(src), err, len(back), bytes.Equal(back, src))
	}
	return frame
}

// BenchmarkLZ4 justifies the sink's own lz4 frame writer: a 300 KB record
// batch of outbox events through it, through a pierrec/lz4 Writer with the
// same 256 KiB blocks (the codec before it), and through franz-go's lz4
// codec (4 MiB blocks). The output buffer is reused, as franz-go reuses its
// pooled ones.
func BenchmarkLZ4(b *testing.B) {
	src := eventBatch(300000)
	writer := func() func(*bytes.Buffer, []byte) {
		w := lz4.NewWriter(nil)
		if err := w.Apply(lz4.BlockSizeOption(lz4.Block256Kb)); err != nil {
			b.Fatal(err)
		}
		return func(dst *bytes.Buffer, src []byte) {
			w.Reset(dst)
			if _, err := w.Write(src); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	def, err := kgo.DefaultCompressor(kgo.Lz4Compression())
	if err != nil {
		b.Fatal(err)
	}
	ours := newLZ4Compressor()
	for _, bc := range []struct {
		name     string
		compress func(*bytes.Buffer, []byte)
	}{
		{"frame-writer", func(dst *bytes.Buffer, src []byte) { ours.Compress(dst, src) }},
		{"pierrec-writer-256KiB", writer()},
		{"franz-go-lz4", func(dst *bytes.Buffer, src []byte) { def.Compress(dst, src) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dst := new(bytes.Buffer)
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				dst.Reset()
				bc.compress(dst, src)
			}
			b.ReportMetric(float64(dst.Len())/float64(len(src)), "ratio")
		})
	}
}

// eventBatch returns outbox events as CloudEvents JSON, one after the
// other, until just over size bytes: the body of a record batch.
func eventBatch(size int) []byte {
	var src []byte
	for _, e := range benchEvents(4096) {
		src = e.AppendJSON(src)
		if len(src) > size {
			break
		}
	}
	return src
}
