package event

import (
	"strings"
	"sync/atomic"
	"time"
)

// SpecVersion is the CloudEvents specification version every Event conforms to.
const SpecVersion = "1.0"

// DataKind tells how Event.Data is to be represented.
type DataKind uint8

const (
	// DataNone means the event carries no data.
	DataNone DataKind = iota
	// DataJSON means Data holds one valid JSON value (from a json or jsonb
	// column, or text that parsed as JSON under a JSON content type).
	DataJSON
	// DataText means Data holds UTF-8 text that is not to be read as JSON.
	DataText
	// DataBinary means Data holds arbitrary bytes (from a bytea column); the
	// JSON format carries it as data_base64.
	DataBinary
)

// Extension is one CloudEvents extension attribute. Values are strings: the
// CloudEvents type system maps every extension to a string in the protocol
// bindings, and keeping them strings keeps the mapping lossless.
type Extension struct {
	Name  string
	Value string
}

// Event is one CloudEvent with its origin in the WAL.
//
// The exported fields are set by the decoder before the event is handed to the
// sinks and are read-only afterwards, so sinks may read them from any
// goroutine.
type Event struct {
	// CloudEvents context attributes.
	ID              string
	Source          string
	Type            string
	Subject         string // optional
	DataContentType string // optional
	DataSchema      string // optional
	Time            time.Time
	Extensions      []Extension // sorted by name, validated names

	// Data and how to represent it.
	Data     []byte
	DataKind DataKind

	// Routing: AggregateType feeds destination templates, AggregateID is the
	// partition key (the partitionkey extension, the Kafka record key and the
	// unit of ordering).
	AggregateType string
	AggregateID   string

	// Origin.
	Table      string    // schema-qualified outbox table, or "" for a logical message
	CommitLSN  uint64    // LSN of the transaction's commit record
	CommitTime time.Time // commit timestamp of the transaction
	Seq        int       // position of the event within its transaction, from 0

	// Size is the approximate number of bytes the event holds; the window
	// counts it.
	Size int

	pending atomic.Int32  // acknowledgements still owed by routed sinks
	ackedBy atomic.Uint64 // bit i: the sink at fan-out index i acknowledged
	tracker Tracker
}

// Tracker is told when every sink an event was routed to has acknowledged it.
// Done must not block; it is called from sink goroutines.
type Tracker interface {
	Done(e *Event)
}

// Track attaches t to e and records that sinks acknowledgements are owed. With
// sinks == 0 the event is done at once. Track must be called before the event
// is handed to any sink.
func (e *Event) Track(t Tracker, sinks int) {
	e.tracker = t
	e.pending.Store(int32(sinks))
	if sinks == 0 && t != nil {
		t.Done(e)
	}
}

// Ack records one routed sink's acknowledgement. Each sink the event was routed
// to calls Ack exactly once, after its destination acknowledged the event (or
// after the event was stored under an explicit dead-letter policy). Ack never
// blocks and is safe for concurrent use.
func (e *Event) Ack() {
	if e.pending.Add(-1) == 0 && e.tracker != nil {
		e.tracker.Done(e)
	}
}

// AckFor records the acknowledgement of the sink at fan-out index i (0 to 63)
// and reports whether it was the first from that sink: a second one is
// ignored, so a sink that acknowledges twice cannot release the slot early.
// Never blocks; safe for concurrent use.
func (e *Event) AckFor(i int) bool {
	bit := uint64(1) << (uint(i) & 63)
	for {
		old := e.ackedBy.Load()
		if old&bit != 0 {
			return false
		}
		if e.ackedBy.CompareAndSwap(old, old|bit) {
			e.Ack()
			return true
		}
	}
}

// AckedFor reports whether the sink at fan-out index i acknowledged e.
func (e *Event) AckedFor(i int) bool { return e.ackedBy.Load()&(uint64(1)<<(uint(i)&63)) != 0 }

// PartitionKey returns the ordering and partitioning key: the aggregate id, or
// the event id when the row has none (such events are unordered).
func (e *Event) PartitionKey() string {
	if e.AggregateID != "" {
		return e.AggregateID
	}
	return e.ID
}

// Extension returns the value of the extension attribute name.
func (e *Event) Extension(name string) (string, bool) {
	for _, x := range e.Extensions {
		if x.Name == name {
			return x.Value, true
		}
	}
	return "", false
}

// IsJSONContentType reports whether a datacontenttype denotes JSON: empty (the
// CloudEvents default for the JSON format), application/json, text/json or any
// +json suffix, ignoring parameters.
func IsJSONContentType(ct string) bool {
	if ct == "" {
		return true
	}
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.ToLower(strings.TrimSpace(ct))
	return ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json")
}
