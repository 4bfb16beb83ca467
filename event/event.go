package event

import (
	"strings"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/ackstate"
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

	// ack is the checkpoint's acknowledgement state (see internal/ackstate).
	ack ackstate.State
}

func init() {
	ackstate.Register(func(e any) *ackstate.State { return &e.(*Event).ack })
}

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
