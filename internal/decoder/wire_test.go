package decoder_test

// Encoders for pgoutput messages, protocol version 1, byte by byte as the
// PostgreSQL documentation ("Logical Replication Message Formats") lays them
// out. They are deliberately independent of the decoder's own reader.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

// Type OIDs used by the tests (pg_type.dat).
const (
	oidBytea       = 17
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidUUID        = 2950
	oidJSONB       = 3802
)

var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// pgMicros converts t to microseconds since 2000-01-01 UTC, the pgoutput
// timestamp representation.
func pgMicros(t time.Time) uint64 { return uint64(t.Sub(pgEpoch) / time.Microsecond) }

type wire []byte

func (w wire) u8(v byte) wire    { return append(w, v) }
func (w wire) u16(v uint16) wire { return binary.BigEndian.AppendUint16(w, v) }
func (w wire) u32(v uint32) wire { return binary.BigEndian.AppendUint32(w, v) }
func (w wire) u64(v uint64) wire { return binary.BigEndian.AppendUint64(w, v) }
func (w wire) str(s string) wire { return append(append(w, s...), 0) }

// beginMsg: Byte1('B') Int64 final LSN, Int64 commit timestamp, Int32 xid.
func beginMsg(finalLSN uint64, commitTime time.Time, xid uint32) []byte {
	return wire{'B'}.u64(finalLSN).u64(pgMicros(commitTime)).u32(xid)
}

// commitMsg: Byte1('C') Int8 flags (0), Int64 commit LSN, Int64 end LSN,
// Int64 commit timestamp.
func commitMsg(commitLSN, endLSN uint64, commitTime time.Time) []byte {
	return wire{'C'}.u8(0).u64(commitLSN).u64(endLSN).u64(pgMicros(commitTime))
}

// originMsg: Byte1('O') Int64 commit LSN on the origin, String origin name.
func originMsg(lsn uint64, name string) []byte {
	return wire{'O'}.u64(lsn).str(name)
}

// typeMsg: Byte1('Y') Int32 type OID, String namespace, String type name.
func typeMsg(oid uint32, namespace, name string) []byte {
	return wire{'Y'}.u32(oid).str(namespace).str(name)
}

type relCol struct {
	name string
	oid  uint32
	key  bool
}

// relationMsg: Byte1('R') Int32 relation OID, String namespace, String name,
// Int8 replica identity, Int16 column count, then per column Int8 flags
// (1 = part of the key), String name, Int32 type OID, Int32 type modifier.
func relationMsg(relID uint32, namespace, name string, cols []relCol) []byte {
	w := wire{'R'}.u32(relID).str(namespace).str(name).u8('d').u16(uint16(len(cols)))
	for _, c := range cols {
		var flags byte
		if c.key {
			flags = 1
		}
		w = w.u8(flags).str(c.name).u32(c.oid).u32(0xFFFFFFFF)
	}
	return w
}

// val is one TupleData column.
type val struct {
	kind byte // 'n' null, 'u' unchanged toast, 't' text, 'b' binary
	data string
}

func txt(s string) val { return val{kind: 't', data: s} }

var null = val{kind: 'n'}

func tupleData(w wire, vals []val) wire {
	w = w.u16(uint16(len(vals)))
	for _, v := range vals {
		w = w.u8(v.kind)
		if v.kind == 't' || v.kind == 'b' {
			w = w.u32(uint32(len(v.data)))
			w = append(w, v.data...)
		}
	}
	return w
}

// insertMsg: Byte1('I') Int32 relation OID, Byte1('N'), TupleData.
func insertMsg(relID uint32, vals ...val) []byte {
	return tupleData(wire{'I'}.u32(relID).u8('N'), vals)
}

// updateMsg: Byte1('U') Int32 relation OID, Byte1('N'), TupleData (no old tuple).
func updateMsg(relID uint32, vals ...val) []byte {
	return tupleData(wire{'U'}.u32(relID).u8('N'), vals)
}

// deleteMsg: Byte1('D') Int32 relation OID, Byte1('K'), TupleData of the key.
func deleteMsg(relID uint32, vals ...val) []byte {
	return tupleData(wire{'D'}.u32(relID).u8('K'), vals)
}

// truncateMsg: Byte1('T') Int32 relation count, Int8 options, Int32 OIDs.
func truncateMsg(relIDs ...uint32) []byte {
	w := wire{'T'}.u32(uint32(len(relIDs))).u8(0)
	for _, id := range relIDs {
		w = w.u32(id)
	}
	return w
}

// logicalMsg: Byte1('M') Int8 flags (1 = transactional), Int64 LSN, String
// prefix, Int32 content length, Byte[n] content.
func logicalMsg(transactional bool, lsn uint64, prefix string, content string) []byte {
	var flags byte
	if transactional {
		flags = 1
	}
	return append(wire{'M'}.u8(flags).u64(lsn).str(prefix).u32(uint32(len(content))), content...)
}

// The default outbox table of internal/schema/outbox.sql.
const outboxRelID = 16385

var outboxCols = []relCol{
	{name: "id", oid: oidUUID, key: true},
	{name: "type", oid: oidText},
	{name: "source", oid: oidText},
	{name: "subject", oid: oidText},
	{name: "aggregate_type", oid: oidText},
	{name: "aggregate_id", oid: oidText},
	{name: "data", oid: oidJSONB},
	{name: "datacontenttype", oid: oidText},
	{name: "dataschema", oid: oidText},
	{name: "headers", oid: oidJSONB},
	{name: "created_at", oid: oidTimestamptz},
}

func outboxRelation() []byte { return relationMsg(outboxRelID, "public", "outbox", outboxCols) }

// outboxRow is one row of the default outbox table by column name; a missing
// key is NULL.
type outboxRow map[string]string

func (r outboxRow) vals(cols []relCol) []val {
	out := make([]val, len(cols))
	for i, c := range cols {
		if v, ok := r[c.name]; ok {
			out[i] = txt(v)
		} else {
			out[i] = null
		}
	}
	return out
}

func (r outboxRow) with(kv ...string) outboxRow {
	out := make(outboxRow, len(r)+len(kv)/2)
	for k, v := range r {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func (r outboxRow) without(keys ...string) outboxRow {
	out := r.with()
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

func outboxInsert(r outboxRow) []byte { return insertMsg(outboxRelID, r.vals(outboxCols)...) }

// A typical row: the one the benchmark decodes too.
var typicalRow = outboxRow{
	"id":              "0b6a4c1e-6a43-4f3b-9d6c-8f1f0c3a2b11",
	"type":            "com.example.order.created",
	"source":          "/orders",
	"subject":         "order-42",
	"aggregate_type":  "order",
	"aggregate_id":    "42",
	"data":            `{"lines": [{"sku": "A-1", "qty": 2}], "total": 10.5}`,
	"datacontenttype": "application/json",
	"dataschema":      "https://example.com/schemas/order-created.json",
	"headers":         `{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`,
	"created_at":      "2026-11-27 08:21:12.123456+00",
}

const (
	txLSN = uint64(0x16_B374D848) // commit LSN of the test transaction: "16/B374D848"
	txEnd = txLSN + 0x30
)

var txTime = time.Date(2026, 11, 27, 8, 21, 13, 0, time.UTC)

// recorder is a decoder.Handler that records what it is told. Its function
// fields, when set, decide the handler's answers.
type recorder struct {
	calls   []string // "B", "E", "C" in order
	begins  []uint64
	commits [][2]uint64
	times   []time.Time // commit times from Begin and Commit
	events  []*event.Event

	onEvent func(e *event.Event) error
}

func (h *recorder) Begin(commitLSN uint64, commitTime time.Time) error {
	h.calls = append(h.calls, "B")
	h.begins = append(h.begins, commitLSN)
	h.times = append(h.times, commitTime)
	return nil
}

func (h *recorder) Event(e *event.Event) error {
	h.calls = append(h.calls, "E")
	h.events = append(h.events, e)
	if h.onEvent != nil {
		return h.onEvent(e)
	}
	return nil
}

func (h *recorder) Commit(commitLSN, endLSN uint64, commitTime time.Time) error {
	h.calls = append(h.calls, "C")
	h.commits = append(h.commits, [2]uint64{commitLSN, endLSN})
	h.times = append(h.times, commitTime)
	return nil
}

var _ decoder.Handler = (*recorder)(nil)

// newDecoder returns a Decoder for cfg and fails the test on error.
func newDecoder(tb interface {
	Helper()
	Fatalf(string, ...any)
}, cfg decoder.Config) *decoder.Decoder {
	tb.Helper()
	d, err := decoder.New(cfg, nil)
	if err != nil {
		tb.Fatalf("decoder.New: %v", err)
	}
	return d
}

// feed decodes msgs in order, with WAL start positions counting up from
// txLSN-0x1000, and returns the first error.
func feed(d *decoder.Decoder, h decoder.Handler, msgs ...[]byte) error {
	for i, m := range msgs {
		if err := d.Decode(txLSN-0x1000+uint64(i)*0x10, m, h); err != nil {
			return fmt.Errorf("message %d (% x): %w", i, m[:min(len(m), 1)], err)
		}
	}
	return nil
}

// decodeTx wraps msgs in the test transaction (Begin … Commit) after the
// default outbox Relation message.
func decodeTx(d *decoder.Decoder, msgs ...[]byte) (*recorder, error) {
	h := &recorder{}
	all := [][]byte{outboxRelation(), beginMsg(txLSN, txTime, 777)}
	all = append(all, msgs...)
	all = append(all, commitMsg(txLSN, txEnd, txTime))
	return h, feed(d, h, all...)
}

// decodeError asserts that err is a *decoder.Error and returns it.
func decodeError(t interface {
	Helper()
	Fatalf(string, ...any)
}, err error) *decoder.Error {
	t.Helper()
	var de *decoder.Error
	if !errors.As(err, &de) {
		t.Fatalf("error = %v (%T), want a *decoder.Error", err, err)
	}
	return de
}
