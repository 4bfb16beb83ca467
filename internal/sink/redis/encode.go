package redis

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Entry field names. The binary layout writes them in this order; see the
// package documentation.
const (
	FieldSpecVersion     = "specversion"
	FieldID              = "id"
	FieldSource          = "source"
	FieldType            = "type"
	FieldSubject         = "subject"
	FieldTime            = "time"
	FieldDataContentType = "datacontenttype"
	FieldDataSchema      = "dataschema"
	FieldData            = "data"
	// FieldEvent is the only field of the structured layout.
	FieldEvent = "event"
)

// StructuredContentType is the media type of FieldEvent in the structured
// layout.
const StructuredContentType = "application/cloudevents+json"

// Guard key infixes: guardInfix follows the stream name in braces and
// precedes the event's dedup key; guardInfixIn follows a hash tag (or "{}")
// and precedes the length-prefixed stream name. Neither is a prefix of the
// other, so the two layouts never meet.
const (
	guardInfix   = ":outbox-cdc-guard:"
	guardInfixIn = ":outbox-cdc-guard-in:"
)

// record is one event as Send needs it. Every string the XADD arguments
// point to lives either in the event (read-only once published) or in the
// record's arena, and the arguments hold *string, which go-redis writes as
// the string and which boxes without allocating. A record is reused once
// its event is acknowledged: vals and arena keep their capacity, so
// encoding allocates nothing once the records in use are warm.
type record struct {
	e      *event.Event
	stream string
	key    string // the event's dedup key (source + id); "guard" and "idmp" modes
	guard  string // guard key; "guard" mode only
	lsn    string // the event's commit LSN, the guard's value; "guard" mode only
	id     string // entry id "<commit LSN>-<seq>"; "entryid" mode only
	time   string
	data   string
	body   string // structured layout
	vals   []any  // field/value pairs of the entry
	arena  []byte // the bytes of key, guard, lsn, id, time and body
}

// maxKeptArena is the largest arena a record keeps for its next event.
const maxKeptArena = 64 << 10

// reset drops the record's references to its event and keeps its buffers.
func (r *record) reset() {
	clear(r.vals)
	vals, arena := r.vals[:0], r.arena[:0]
	if cap(arena) > maxKeptArena {
		arena = nil
	}
	*r = record{vals: vals, arena: arena}
}

// encoder turns events into records. It belongs to the Publish goroutine.
type encoder struct {
	stream     streamNamer
	structured bool
	guard      bool
	idmp       bool
	entryID    bool
}

type streamNamer interface {
	Destination(e *event.Event) (string, error)
}

// encode fills r, a reset record, for e. It returns an error for an event
// that cannot be written; the engine reports it as a sink.PermanentError.
func (c *encoder) encode(e *event.Event, r *record) error {
	stream, err := c.stream.Destination(e)
	if err != nil {
		return err
	}
	if stream == "" {
		return errors.New("the stream template gave an empty stream name")
	}
	nbytes := 32
	if c.structured {
		nbytes += 256 + len(e.Data)*4/3 + len(e.ID) + len(e.Source) + len(e.Type) + len(e.Subject) + len(e.DataSchema)
		for _, x := range e.Extensions {
			nbytes += len(x.Name) + len(x.Value) + 6
		}
	}
	if c.guard {
		nbytes += 2 * (64 + len(e.ID) + len(e.Source) + len(stream))
	}
	if c.idmp {
		nbytes += 8 + len(e.ID) + len(e.Source)
	}
	if c.entryID {
		nbytes += 42
	}
	arena := r.arena[:0]
	if cap(arena) < nbytes {
		arena = make([]byte, 0, nbytes)
	}
	vals := r.vals[:0]
	// Nine fields at most, and the extensions. Sized once: appending from
	// empty would leave a record, kept for the next event, with up to twice
	// the room it needs.
	if nvals := 18 + 2*len(e.Extensions); cap(vals) < nvals && !c.structured {
		vals = make([]any, 0, nvals)
	}
	r.e = e
	r.stream = stream
	if c.structured {
		n := len(arena)
		arena = e.AppendJSON(arena)
		r.body = bytesString(arena[n:])
		vals = append(vals, FieldEvent, &r.body)
	} else {
		vals = append(vals, FieldSpecVersion, event.SpecVersion, FieldID, &e.ID, FieldSource, &e.Source, FieldType, &e.Type)
		if e.Subject != "" {
			vals = append(vals, FieldSubject, &e.Subject)
		}
		if !e.Time.IsZero() {
			n := len(arena)
			arena = event.AppendTime(arena, e.Time)
			r.time = bytesString(arena[n:])
			vals = append(vals, FieldTime, &r.time)
		}
		if e.DataContentType != "" {
			vals = append(vals, FieldDataContentType, &e.DataContentType)
		}
		if e.DataSchema != "" {
			vals = append(vals, FieldDataSchema, &e.DataSchema)
		}
		for j := range e.Extensions {
			x := &e.Extensions[j]
			if reservedField(x.Name) {
				r.vals, r.arena = vals, arena
				return fmt.Errorf("extension %q collides with an entry field of the binary layout", x.Name)
			}
			vals = append(vals, &x.Name, &x.Value)
		}
		if e.DataKind != event.DataNone {
			r.data = bytesString(e.Data)
			vals = append(vals, FieldData, &r.data)
		}
	}
	r.vals = vals
	if c.guard || c.idmp {
		n := len(arena)
		arena = event.AppendDedupKey(arena, e.Source, e.ID)
		r.key = bytesString(arena[n:])
	}
	if c.guard {
		n := len(arena)
		arena = appendGuardKey(arena, stream, r.key)
		r.guard = bytesString(arena[n:])
		n = len(arena)
		arena = event.AppendLSN(arena, sink.EventLSN(e))
		r.lsn = bytesString(arena[n:])
	}
	if c.entryID {
		if e.CommitLSN == 0 || e.Seq < 0 {
			r.arena = arena
			return fmt.Errorf("dedup entryid needs a commit LSN and a sequence number; the event has %d/%d", e.CommitLSN, e.Seq)
		}
		n := len(arena)
		arena = appendEntryID(arena, e)
		r.id = bytesString(arena[n:])
	}
	r.arena = arena
	return nil
}

// appendEntryID appends the stream entry id of e in "entryid" mode:
// "<commit LSN>-<seq>", both decimal. Ids grow in commit order, as Redis
// requires within a stream.
func appendEntryID(dst []byte, e *event.Event) []byte {
	dst = strconv.AppendUint(dst, e.CommitLSN, 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, uint64(e.Seq), 10)
}

func reservedField(name string) bool {
	switch name {
	case FieldSpecVersion, FieldID, FieldSource, FieldType, FieldSubject, FieldTime,
		FieldDataContentType, FieldDataSchema, FieldData:
		return true
	}
	return false
}

// bytesString returns b as a string without copying. The caller guarantees
// b is not written while the string is in use: a record's arena is written
// again only after its event was acknowledged (when nothing holds the
// record's strings any more), and event data is read-only once published.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// appendGuardKey appends the guard key of the event with dedup key key
// ([event.Event.DedupKey]) in stream. The key hashes to the stream's Redis
// Cluster slot:
//
//   - a stream without a hash tag and without '}': "{" + stream + "}" +
//     guardInfix + key, e.g. "{outbox:order}:outbox-cdc-guard:/shop|42";
//   - a stream with a hash tag "{tag}": "{tag}" + guardInfixIn + the stream
//     name's length in bytes (decimal) + ":" + stream + ":" + key;
//   - any other stream with a '}' (no cluster slot can be shared with it):
//     "{}" + guardInfixIn + the same length-prefixed stream + ":" + key.
//
// Every part is delimited (the first '}' ends the braces, the infix tells
// the layout, the length bounds the stream name, and the dedup key is
// unambiguous by itself), so different (stream, key) pairs never share a
// guard.
func appendGuardKey(dst []byte, stream, key string) []byte {
	tag, tagged := hashTag(stream)
	if !tagged && strings.IndexByte(stream, '}') < 0 {
		dst = append(dst, '{')
		dst = append(dst, stream...)
		dst = append(dst, '}')
		dst = append(dst, guardInfix...)
		return append(dst, key...)
	}
	dst = append(dst, '{')
	dst = append(dst, tag...)
	dst = append(dst, '}')
	dst = append(dst, guardInfixIn...)
	dst = strconv.AppendInt(dst, int64(len(stream)), 10)
	dst = append(dst, ':')
	dst = append(dst, stream...)
	dst = append(dst, ':')
	return append(dst, key...)
}

// hashTag returns the part of key Redis Cluster hashes when key has a hash
// tag: the text between the first '{' and the first '}' after it, if not
// empty.
func hashTag(key string) (string, bool) {
	i := strings.IndexByte(key, '{')
	if i < 0 {
		return "", false
	}
	j := strings.IndexByte(key[i+1:], '}')
	if j <= 0 {
		return "", false
	}
	return key[i+1 : i+1+j], true
}
