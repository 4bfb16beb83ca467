package decoder_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
)

type discardHandler struct{}

func (discardHandler) Begin(uint64, time.Time) error          { return nil }
func (discardHandler) Event(*event.Event) error               { return nil }
func (discardHandler) Commit(uint64, uint64, time.Time) error { return nil }

// BenchmarkDecodeInsert decodes the typical 11-column outbox insert
// (typicalRow: jsonb data, one header, timestamptz) into an event.
func BenchmarkDecodeInsert(b *testing.B) {
	benchInsert(b, "UTF8", typicalRow)
}

// BenchmarkDecodeInsertLatin1 is the same row in a LATIN1 database, with
// one non-ASCII subject to convert.
func BenchmarkDecodeInsertLatin1(b *testing.B) {
	benchInsert(b, "LATIN1", typicalRow.with("subject", "caf\xe9"))
}

func benchInsert(b *testing.B, enc string, row outboxRow) {
	d := newDecoder(b, decoder.Config{ServerEncoding: enc})
	if err := feed(d, &recorder{}, outboxRelation(), beginMsg(txLSN, txTime, 1)); err != nil {
		b.Fatal(err)
	}
	msg := outboxInsert(row)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(txLSN, msg, discardHandler{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeVsPglogrepl justifies the hand-written pgoutput decoder
// against the library it replaces: the same typical outbox insert decoded
// into an event by the decoder ("outbox-cdc"), and by pglogrepl.Parse plus
// the mapping a relay would write on top of it: columns by name, text to
// strings, the data copied, created_at parsed, the headers' JSON decoded
// into extensions, partitionkey and pglsn ("pglogrepl+map"). The setup
// checks that both give the same event.
func BenchmarkDecodeVsPglogrepl(b *testing.B) {
	msg := outboxInsert(typicalRow)
	b.Run("outbox-cdc", func(b *testing.B) {
		d := newDecoder(b, decoder.Config{ServerEncoding: "UTF8"})
		if err := feed(d, &recorder{}, outboxRelation(), beginMsg(txLSN, txTime, 1)); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if err := d.Decode(txLSN, msg, discardHandler{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pglogrepl+map", func(b *testing.B) {
		m, err := pglogrepl.Parse(outboxRelation())
		if err != nil {
			b.Fatal(err)
		}
		rel := m.(*pglogrepl.RelationMessage)
		want := decodeOne(b)
		got, err := pglogreplEvent(rel, msg, txLSN)
		if err != nil {
			b.Fatal(err)
		}
		if got.ID != want.ID || got.Type != want.Type || got.Source != want.Source || got.Subject != want.Subject ||
			got.DataSchema != want.DataSchema || got.DataContentType != want.DataContentType || !got.Time.Equal(want.Time) ||
			string(got.Data) != string(want.Data) || got.AggregateID != want.AggregateID ||
			fmt.Sprint(got.Extensions) != fmt.Sprint(want.Extensions) {
			b.Fatalf("the mapping differs from the decoder:\n%+v\n%+v", got, want)
		}
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := pglogreplEvent(rel, msg, txLSN); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// decodeOne decodes the typical insert with the decoder.
func decodeOne(b *testing.B) *event.Event {
	d := newDecoder(b, decoder.Config{ServerEncoding: "UTF8"})
	r := &recorder{}
	if err := feed(d, r, outboxRelation(), beginMsg(txLSN, txTime, 1), outboxInsert(typicalRow)); err != nil {
		b.Fatal(err)
	}
	return r.events[0]
}

// pglogreplEvent maps an insert parsed by pglogrepl to an event.
func pglogreplEvent(rel *pglogrepl.RelationMessage, msg []byte, lsn uint64) (*event.Event, error) {
	m, err := pglogrepl.Parse(msg)
	if err != nil {
		return nil, err
	}
	ins := m.(*pglogrepl.InsertMessage)
	e := &event.Event{DataKind: event.DataJSON, CommitLSN: lsn}
	var headers []byte
	for i, c := range ins.Tuple.Columns {
		if c.DataType != pglogrepl.TupleDataTypeText {
			continue
		}
		switch rel.Columns[i].Name {
		case "id":
			e.ID = string(c.Data)
		case "type":
			e.Type = string(c.Data)
		case "source":
			e.Source = string(c.Data)
		case "subject":
			e.Subject = string(c.Data)
		case "aggregate_type":
			e.AggregateType = string(c.Data)
		case "aggregate_id":
			e.AggregateID = string(c.Data)
		case "data":
			e.Data = slices.Clone(c.Data)
		case "datacontenttype":
			e.DataContentType = string(c.Data)
		case "dataschema":
			e.DataSchema = string(c.Data)
		case "headers":
			headers = c.Data
		case "created_at":
			t, err := time.Parse("2006-01-02 15:04:05.999999-07", string(c.Data))
			if err != nil {
				return nil, err
			}
			e.Time = t.UTC()
		}
	}
	e.Extensions = append(e.Extensions,
		event.Extension{Name: decoder.ExtPartitionKey, Value: e.AggregateID},
		event.Extension{Name: decoder.ExtLSN, Value: pglogrepl.LSN(lsn).String()})
	if headers != nil {
		var h map[string]string
		if err := json.Unmarshal(headers, &h); err != nil {
			return nil, err
		}
		for _, k := range slices.Sorted(maps.Keys(h)) {
			e.Extensions = append(e.Extensions, event.Extension{Name: k, Value: h[k]})
		}
	}
	return e, nil
}
