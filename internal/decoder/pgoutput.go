package decoder

import (
	"encoding/binary"
	"fmt"
	"time"
)

// pgoutput message types (PostgreSQL docs, "Logical Replication Message
// Formats").
const (
	msgBegin    = 'B'
	msgCommit   = 'C'
	msgOrigin   = 'O'
	msgRelation = 'R'
	msgType     = 'Y'
	msgInsert   = 'I'
	msgUpdate   = 'U'
	msgDelete   = 'D'
	msgTruncate = 'T'
	msgMessage  = 'M'
)

// ErrProtocol wraps every malformed-message error. It is permanent (see
// sink.IsPermanent): the server sends the same bytes again.
var ErrProtocol error = protocolError{}

type protocolError struct{}

func (protocolError) Error() string   { return "decoder: malformed pgoutput message" }
func (protocolError) Permanent() bool { return true }

// pgEpoch is 2000-01-01 00:00:00 UTC, the origin of PostgreSQL timestamps.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func pgTime(us int64) time.Time { return pgEpoch.Add(time.Duration(us) * time.Microsecond) }

// reader walks one message without allocating; the first error sticks.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s at byte %d of %d", ErrProtocol, what, r.off, len(r.b))
	}
}

func (r *reader) u8(what string) byte {
	if r.err != nil || r.off+1 > len(r.b) {
		r.fail(what)
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16(what string) uint16 {
	if r.err != nil || r.off+2 > len(r.b) {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32(what string) uint32 {
	if r.err != nil || r.off+4 > len(r.b) {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) u64(what string) uint64 {
	if r.err != nil || r.off+8 > len(r.b) {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

// bytes returns the next n bytes, aliasing the message.
func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil || n < 0 || r.off+n > len(r.b) {
		r.fail(what)
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

// cstring returns a NUL-terminated string, aliasing the message.
func (r *reader) cstring(what string) []byte {
	if r.err != nil {
		return nil
	}
	for i := r.off; i < len(r.b); i++ {
		if r.b[i] == 0 {
			v := r.b[r.off:i]
			r.off = i + 1
			return v
		}
	}
	r.fail(what)
	return nil
}

// column is one tuple column: kind 'n' (null), 'u' (unchanged TOAST), 't'
// (text) or 'b' (binary), and its bytes aliasing the message.
type column struct {
	kind byte
	data []byte
}

// readTuple parses TupleData into cols, reusing its storage.
func (r *reader) readTuple(cols []column) []column {
	n := int(r.u16("tuple column count"))
	cols = cols[:0]
	for i := 0; i < n && r.err == nil; i++ {
		c := column{kind: r.u8("tuple column kind")}
		switch c.kind {
		case 't', 'b':
			l := r.u32("tuple column length")
			c.data = r.bytes(int(l), "tuple column data")
		case 'n', 'u':
		default:
			if r.err == nil {
				r.err = fmt.Errorf("%w: unknown tuple column kind %q", ErrProtocol, c.kind)
			}
		}
		cols = append(cols, c)
	}
	return cols
}
