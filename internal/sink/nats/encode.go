package nats

import (
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/delivery"
)

// Header names of the CloudEvents NATS protocol binding (binary mode): every
// attribute is a header named after it with the "ce-" prefix, including
// datacontenttype. NATS header names are case-insensitive by design (ADR-4)
// but nats.go's Header is case-sensitive; these are the lower-case names the
// binding's examples and the CloudEvents Go SDK use.
const (
	hdrSpecVersion     = "ce-specversion"
	hdrID              = "ce-id"
	hdrSource          = "ce-source"
	hdrType            = "ce-type"
	hdrSubject         = "ce-subject"
	hdrTime            = "ce-time"
	hdrDataContentType = "ce-datacontenttype"
	hdrDataSchema      = "ce-dataschema"
	hdrPrefix          = "ce-"

	// hdrContentType marks structured mode: the binding reads a message as
	// structured when its Content-Type starts with application/cloudevents.
	hdrContentType        = "content-type"
	structuredContentType = "application/cloudevents+json"

	hdrMsgID      = jetstream.MsgIDHeader             // Nats-Msg-Id
	hdrExpectLast = jetstream.ExpectedLastMsgIDHeader // Nats-Expected-Last-Msg-Id
)

// entry is one event on its way, the engine's message: its NATS message,
// built once, and the ticket of its latest send. The engine pools entries,
// so the pointer is stable while the event is in flight: the publisher's
// replies find it by pointer.
type entry struct {
	msg  nats.Msg
	e    *event.Event
	id   string   // Nats-Msg-Id: the event's dedup key, source and id
	exp  []string // value slot of the Nats-Expected-Last-Msg-Id header
	t    delivery.Ticket
	sent time.Time // when the publisher last sent it; under the publisher's lock
}

// encoder builds NATS messages. It is used by the Publish goroutine only.
type encoder struct {
	structured bool
	extKeys    map[string]string // extension name -> "ce-" + name
	buf        []byte            // scratch for percent-encoded values and times
	fix        []fixup
	arena      []byte // structured payloads are carved out of it

	lastTime    time.Time // the last ce-time formatted, and its string
	lastTimeStr string
}

type fixup struct{ i, start, end int }

func newEncoder(structured bool) *encoder {
	return &encoder{structured: structured, extKeys: make(map[string]string)}
}

// encode builds the message for e on subject into p. It allocates the
// header map and one backing array for the header values; computed values
// (times, percent-encoded strings) share one more string.
func (enc *encoder) encode(e *event.Event, subject string, p *entry) {
	if enc.structured {
		enc.encodeStructured(e, subject, p)
		return
	}
	n := 6 + len(e.Extensions) // specversion id source type time msgid + extensions
	if e.Subject != "" {
		n++
	}
	if e.DataContentType != "" {
		n++
	}
	if e.DataSchema != "" {
		n++
	}
	h, vals := newHeader(n + 1) // + the Nats-Expected-Last-Msg-Id slot
	b := hdrBuilder{h: h, vals: vals, buf: enc.buf[:0], fix: enc.fix[:0]}
	b.raw(hdrSpecVersion, event.SpecVersion)
	b.pct(hdrID, e.ID)
	b.pct(hdrSource, e.Source)
	b.pct(hdrType, e.Type)
	if e.Subject != "" {
		b.pct(hdrSubject, e.Subject)
	}
	timeIdx := -1
	if !e.Time.IsZero() {
		// Events of one transaction often share a time: reuse its string.
		if enc.lastTimeStr != "" && e.Time.Equal(enc.lastTime) {
			b.raw(hdrTime, enc.lastTimeStr)
		} else {
			timeIdx = b.n
			b.time(hdrTime, e.Time)
		}
	}
	if e.DataContentType != "" {
		b.pct(hdrDataContentType, e.DataContentType)
	}
	if e.DataSchema != "" {
		b.pct(hdrDataSchema, e.DataSchema)
	}
	for _, x := range e.Extensions {
		b.pct(enc.extKey(x.Name), x.Value)
	}
	keyIdx := b.n
	b.key(hdrMsgID, e)
	b.finish()
	enc.buf, enc.fix = b.buf, b.fix
	if timeIdx >= 0 {
		enc.lastTime, enc.lastTimeStr = e.Time, vals[timeIdx]
	}
	var data []byte
	if e.DataKind != event.DataNone {
		data = e.Data
	}
	*p = entry{
		msg: nats.Msg{Subject: subject, Data: data, Header: h},
		e:   e,
		id:  vals[keyIdx],
		exp: vals[n : n+1 : n+1],
	}
}

func (enc *encoder) encodeStructured(e *event.Event, subject string, p *entry) {
	h, vals := newHeader(3)
	vals[0] = structuredContentType
	h[hdrContentType] = vals[0:1:1]
	enc.buf = event.AppendDedupKey(enc.buf[:0], e.Source, e.ID)
	id := string(enc.buf)
	vals[1] = id
	h[hdrMsgID] = vals[1:2:2]

	// Carve the payload out of a shared arena: one allocation per 64 KiB of
	// payloads instead of one per event. A slice keeps its chunk alive until
	// its event is acknowledged.
	est := 256 + len(e.ID) + len(e.Source) + len(e.Type) + len(e.Subject) + len(e.DataSchema) +
		len(e.DataContentType) + len(e.Data)*4/3
	for _, x := range e.Extensions {
		est += len(x.Name) + len(x.Value) + 8
	}
	if cap(enc.arena)-len(enc.arena) < est {
		enc.arena = make([]byte, 0, max(64<<10, 2*est))
	}
	start := len(enc.arena)
	enc.arena = e.AppendJSON(enc.arena)
	end := len(enc.arena)
	*p = entry{
		msg: nats.Msg{Subject: subject, Data: enc.arena[start:end:end], Header: h},
		e:   e,
		id:  id,
		exp: vals[2:3:3],
	}
}

// newHeader returns a header map and n value slots. (Recycling the maps of
// acknowledged messages was measured: clearing a cold map costs about what
// allocating a new one does, so they are not reused.)
func newHeader(n int) (nats.Header, []string) {
	return make(nats.Header, n), make([]string, n)
}

func (enc *encoder) extKey(name string) string {
	k, ok := enc.extKeys[name]
	if !ok {
		if len(enc.extKeys) >= 1024 {
			clear(enc.extKeys)
		}
		k = hdrPrefix + name
		enc.extKeys[name] = k
	}
	return k
}

// hdrBuilder fills a header map whose values live in one []string.
type hdrBuilder struct {
	h    nats.Header
	vals []string
	n    int
	buf  []byte
	fix  []fixup
}

func (b *hdrBuilder) raw(key, v string) {
	b.vals[b.n] = v
	b.h[key] = b.vals[b.n : b.n+1 : b.n+1]
	b.n++
}

func (b *hdrBuilder) pct(key, v string) {
	if !needsPct(v) {
		b.raw(key, v)
		return
	}
	start := len(b.buf)
	b.buf = appendPct(b.buf, v)
	b.later(key, start)
}

// key sets header key to the dedup key of e ([event.Event.DedupKey]).
func (b *hdrBuilder) key(key string, e *event.Event) {
	start := len(b.buf)
	b.buf = event.AppendDedupKey(b.buf, e.Source, e.ID)
	b.later(key, start)
}

func (b *hdrBuilder) time(key string, t time.Time) {
	start := len(b.buf)
	b.buf = event.AppendTime(b.buf, t)
	b.later(key, start)
}

// later records that value n is buf[start:] and is set by finish.
func (b *hdrBuilder) later(key string, start int) {
	b.fix = append(b.fix, fixup{b.n, start, len(b.buf)})
	b.h[key] = b.vals[b.n : b.n+1 : b.n+1]
	b.n++
}

func (b *hdrBuilder) finish() {
	if len(b.fix) == 0 {
		return
	}
	s := string(b.buf)
	for _, f := range b.fix {
		b.vals[f.i] = s[f.start:f.end]
	}
}

// needsPct reports whether s has a byte the binding requires to be
// percent-encoded in a header value: space, '"', '%', or anything outside
// the printable ASCII range U+0021-U+007E.
func needsPct(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			return true
		}
	}
	return false
}

const upperHex = "0123456789ABCDEF"

// appendPct appends s percent-encoded as the CloudEvents NATS binding
// (section 3.1.3.2) prescribes: each byte of the UTF-8 encoding of space,
// '"', '%' and every character outside U+0021-U+007E becomes %XY with
// upper-case hex digits. Invalid UTF-8 is encoded as U+FFFD so the result
// always decodes to valid UTF-8.
func appendPct(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c > ' ' && c < 0x7f && c != '"' && c != '%' {
			dst = append(dst, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&0xf])
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "%EF%BF%BD"...)
			i++
			continue
		}
		for _, b := range []byte(s[i : i+size]) {
			dst = append(dst, '%', upperHex[b>>4], upperHex[b&0xf])
		}
		i += size
	}
	return dst
}
