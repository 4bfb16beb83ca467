package kafka

import (
	"context"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/delivery"
)

// Header names of the CloudEvents Kafka protocol binding 1.0.
const (
	hdrSpecVersion     = "ce_specversion"
	hdrID              = "ce_id"
	hdrSource          = "ce_source"
	hdrType            = "ce_type"
	hdrSubject         = "ce_subject"
	hdrTime            = "ce_time"
	hdrDataSchema      = "ce_dataschema"
	hdrContentType     = "content-type"
	hdrExtensionPrefix = "ce_"

	structuredContentType = "application/cloudevents+json"
)

var (
	specVersionValue    = []byte(event.SpecVersion)
	structuredTypeValue = []byte(structuredContentType)
)

// rec is one event in flight, the engine's message: the kgo.Record handed
// to Produce plus the storage its fields point into, so that building a
// record allocates nothing (the engine pools recs). A rec is its record's
// Context (a context that is never done, which franz-go treats as not
// cancelable), which is how the promise finds its way back from the
// *kgo.Record to the event and its ticket.
type rec struct {
	kr   kgo.Record
	e    *event.Event
	t    delivery.Ticket // the engine's ticket for the record's send
	hdrs [12]kgo.RecordHeader
	tbuf [40]byte // ce_time value
	vbuf []byte   // structured-mode value
}

// context.Context, never done.
func (*rec) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*rec) Done() <-chan struct{}       { return nil }
func (*rec) Err() error                  { return nil }
func (*rec) Value(any) any               { return nil }

var _ context.Context = (*rec)(nil)

// maxPooledValue is the largest structured-mode buffer a rec keeps.
const maxPooledValue = 64 << 10

// reset drops every reference into the event before the rec is reused.
func (r *rec) reset() {
	vbuf := r.vbuf
	if cap(vbuf) > maxPooledValue {
		vbuf = nil
	}
	*r = rec{vbuf: vbuf[:0]}
}

// bytesOf returns the bytes of s without copying. franz-go only reads record
// keys, values and headers, and the event (which owns s) outlives the record.
func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// extHeaders caches "ce_"+name for extension names, so headers do not
// allocate per event. Safe for concurrent use.
type extHeaders struct{ m sync.Map }

func (h *extHeaders) name(ext string) string {
	if v, ok := h.m.Load(ext); ok {
		return v.(string)
	}
	s := hdrExtensionPrefix + ext
	h.m.Store(ext, s)
	return s
}

// build fills r with e as a record for topic, in the given content mode.
func (r *rec) build(e *event.Event, topic string, structured bool, ts time.Time, ext *extHeaders) {
	r.e = e
	r.kr = kgo.Record{
		Topic:     topic,
		Key:       bytesOf(e.PartitionKey()),
		Timestamp: ts,
		Context:   r,
	}
	h := r.hdrs[:0]
	if structured {
		r.vbuf = e.AppendJSON(r.vbuf[:0])
		r.kr.Value = r.vbuf
		r.kr.Headers = append(h, kgo.RecordHeader{Key: hdrContentType, Value: structuredTypeValue})
		return
	}
	h = append(h,
		kgo.RecordHeader{Key: hdrSpecVersion, Value: specVersionValue},
		kgo.RecordHeader{Key: hdrID, Value: bytesOf(e.ID)},
		kgo.RecordHeader{Key: hdrSource, Value: bytesOf(e.Source)},
		kgo.RecordHeader{Key: hdrType, Value: bytesOf(e.Type)},
	)
	if e.Subject != "" {
		h = append(h, kgo.RecordHeader{Key: hdrSubject, Value: bytesOf(e.Subject)})
	}
	if !e.Time.IsZero() {
		h = append(h, kgo.RecordHeader{Key: hdrTime, Value: event.AppendTime(r.tbuf[:0], e.Time)})
	}
	if e.DataSchema != "" {
		h = append(h, kgo.RecordHeader{Key: hdrDataSchema, Value: bytesOf(e.DataSchema)})
	}
	if e.DataContentType != "" {
		h = append(h, kgo.RecordHeader{Key: hdrContentType, Value: bytesOf(e.DataContentType)})
	}
	for _, x := range e.Extensions {
		h = append(h, kgo.RecordHeader{Key: ext.name(x.Name), Value: bytesOf(x.Value)})
	}
	r.kr.Headers = h
	if e.DataKind != event.DataNone {
		// The binding puts data as is in the value; with no data the value
		// is null (a tombstone on a compacted topic, as the binding says).
		r.kr.Value = e.Data
		if r.kr.Value == nil {
			r.kr.Value = []byte{}
		}
	}
}

// batchOverhead is what a record batch holding one record adds around the
// record: franz-go's recordBatchOverhead (65 bytes, counting the request's
// 4-byte length prefix) plus up to 5 bytes of length prefix in flexible
// produce requests. A record fits a batch of max bytes when
// batchOverhead+recordWireSize <= max.
const batchOverhead = 70

// recordWireSize is the encoded size of r as the first record of a batch (v2
// record format), as franz-go computes it to decide whether the record fits.
func recordWireSize(r *kgo.Record) int {
	l := 1 + // attributes
		1 + // timestamp delta 0
		1 + // offset delta 0
		varintLen(len(r.Key)) + len(r.Key) +
		varintLen(len(r.Value)) + len(r.Value) +
		varintLen(len(r.Headers))
	for _, h := range r.Headers {
		l += varintLen(len(h.Key)) + len(h.Key) + varintLen(len(h.Value)) + len(h.Value)
	}
	return varintLen(l) + l
}

// varintLen is the length of n as a zigzag varint.
func varintLen(n int) int {
	u := uint64(n) << 1
	l := 1
	for u >= 0x80 {
		u >>= 7
		l++
	}
	return l
}

// tooLargeError is the cause of a PermanentError for an event that does not
// fit in a record batch.
type tooLargeError struct {
	Topic string
	Size  int // bytes the record needs in a batch
	Max   int32
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("record for topic %q needs %d bytes, over the %d-byte batch limit (%s); raise the topic's max.message.bytes (and batch_max_bytes if set) or shrink the event",
		e.Topic, e.Size, e.Max, messageTooLargeText)
}

func (e *tooLargeError) Unwrap() error { return errMessageTooLarge }
