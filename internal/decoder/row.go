package decoder

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// Extension attributes the decoder sets itself.
const (
	ExtPartitionKey = "partitionkey" // the aggregate id (CloudEvents partitioning extension)
	ExtLSN          = "pglsn"        // commit LSN of the event's transaction
)

// reserved are attribute names a header may not use.
var reserved = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true, "time": true,
	"datacontenttype": true, "dataschema": true, "data": true, "data_base64": true,
	ExtPartitionKey: true, ExtLSN: true,
}

// baseEventSize approximates an Event's fixed memory for the window.
const baseEventSize = 256

func (d *Decoder) insert(r *reader, walStart uint64, h Handler) error {
	relID := r.u32("insert relation id")
	if k := r.u8("insert tuple kind"); r.err == nil && k != 'N' {
		return fmt.Errorf("%w: insert tuple kind %q at LSN %s", ErrProtocol, k, FormatLSN(walStart))
	}
	d.cols = r.readTuple(d.cols)
	if r.err != nil {
		return r.err
	}
	rel := d.rels[relID]
	if rel == nil {
		return fmt.Errorf("%w: insert for unknown relation %d at LSN %s", ErrProtocol, relID, FormatLSN(walStart))
	}
	if !d.inTx {
		return fmt.Errorf("%w: insert outside a transaction at LSN %s", ErrProtocol, FormatLSN(walStart))
	}
	if rel.table == nil {
		return d.failed(d.foreignRow(rel, d.cols))
	}
	if derr := d.rowText(rel, d.cols); derr != nil {
		return d.failed(derr)
	}
	e, err := d.row(rel, d.cols)
	if err != nil {
		var derr *Error
		if errors.As(err, &derr) {
			return d.failed(derr)
		}
		return err
	}
	return h.Event(e)
}

func (d *Decoder) rowError(rel *relation, cols []column, field int, reason string) *Error {
	e := &Error{Table: rel.name, LSN: d.commitLSN, Reason: reason, Raw: make(map[string]*string, len(cols))}
	if i := rel.idx[fID]; i >= 0 && i < len(cols) && cols[i].kind == 't' {
		e.RowID = string(cols[i].data)
	}
	if field >= 0 {
		e.Column = fieldNames[field]
		if i := rel.idx[field]; i >= 0 {
			e.Column = rel.cols[i].name
		}
	}
	for i, c := range cols {
		if i >= len(rel.cols) {
			break
		}
		if c.kind == 't' || c.kind == 'b' {
			s := rawText(c.data)
			e.Raw[rel.cols[i].name] = &s
		} else {
			e.Raw[rel.cols[i].name] = nil
		}
	}
	return e
}

// text returns the text of field f, whether it is present (not NULL) and an
// error reason for a value the decoder cannot read.
func (rel *relation) text(cols []column, f int) ([]byte, bool, string) {
	i := rel.idx[f]
	if i < 0 || i >= len(cols) {
		return nil, false, ""
	}
	switch cols[i].kind {
	case 't':
		return cols[i].data, true, ""
	case 'n':
		return nil, false, ""
	case 'u':
		return nil, false, "unchanged TOAST value in an insert"
	default:
		return nil, false, "binary tuple format is not supported"
	}
}

func (d *Decoder) row(rel *relation, cols []column) (*event.Event, error) {
	if rel.err != nil {
		return nil, d.rowError(rel, cols, -1, rel.err.Error())
	}
	if len(cols) != len(rel.cols) {
		return nil, d.rowError(rel, cols, -1, fmt.Sprintf("tuple has %d columns, relation has %d", len(cols), len(rel.cols)))
	}
	e := &event.Event{
		Table:      rel.name,
		CommitLSN:  d.commitLSN,
		CommitTime: d.commitTime,
		Seq:        d.seq,
	}
	size := baseEventSize
	str := func(f int, required bool) (string, *Error) {
		return d.column(rel, cols, f, required, &size, false)
	}
	istr := func(f int, required bool) (string, *Error) { // for values that repeat across rows
		return d.column(rel, cols, f, required, &size, true)
	}
	var err *Error
	if e.ID, err = str(fID, true); err != nil {
		return nil, err
	}
	if e.Type, err = istr(fType, true); err != nil {
		return nil, err
	}
	if e.Source, err = istr(fSource, false); err != nil {
		return nil, err
	}
	if e.Source == "" {
		if e.Source = rel.table.DefaultSource; e.Source == "" {
			return nil, d.rowError(rel, cols, fSource, "is NULL or empty and no default_source is configured; a CloudEvent requires source")
		}
	}
	if e.Source != d.lastSource {
		if reason := validURIRef(e.Source); reason != "" {
			return nil, d.rowError(rel, cols, fSource, reason)
		}
		d.lastSource = e.Source
	}
	if e.Subject, err = str(fSubject, false); err != nil {
		return nil, err
	}
	if e.AggregateType, err = istr(fAggregateType, false); err != nil {
		return nil, err
	}
	if e.AggregateID, err = str(fAggregateID, false); err != nil {
		return nil, err
	}
	if e.DataContentType, err = istr(fDataContentType, false); err != nil {
		return nil, err
	}
	if e.DataContentType != d.lastCT {
		if reason := validMediaType(e.DataContentType); reason != "" {
			return nil, d.rowError(rel, cols, fDataContentType, reason)
		}
		d.lastCT = e.DataContentType
	}
	if e.DataSchema, err = istr(fDataSchema, false); err != nil {
		return nil, err
	}
	if e.DataSchema != "" && e.DataSchema != d.lastSchema {
		if reason := validURI(e.DataSchema); reason != "" {
			return nil, d.rowError(rel, cols, fDataSchema, reason)
		}
		d.lastSchema = e.DataSchema
	}
	if reason := d.data(rel, cols, e); reason != "" {
		return nil, d.rowError(rel, cols, fData, reason)
	}
	size += len(e.Data)
	if reason := d.time(rel, cols, e); reason != "" {
		return nil, d.rowError(rel, cols, fTime, reason)
	}
	if reason := d.headers(rel, cols, e); reason != "" {
		return nil, d.rowError(rel, cols, fHeaders, reason)
	}
	d.finish(e)
	e.Size = size + 32*len(e.Extensions)
	return e, nil
}

// column reads field f as a string.
func (d *Decoder) column(rel *relation, cols []column, f int, required bool, size *int, intern bool) (string, *Error) {
	v, ok, bad := rel.text(cols, f)
	if bad != "" {
		return "", d.rowError(rel, cols, f, bad)
	}
	if !ok || len(v) == 0 {
		if required {
			return "", d.rowError(rel, cols, f, "is NULL or empty; a CloudEvent requires "+fieldNames[f])
		}
		return "", nil
	}
	*size += len(v)
	if intern {
		return d.intern(v), nil
	}
	return string(v), nil
}

// finish adds the decoder's own extensions and numbers the event.
func (d *Decoder) finish(e *event.Event) {
	if e.Extensions == nil {
		e.Extensions = make([]event.Extension, 0, 2)
	}
	if e.AggregateID != "" {
		e.Extensions = append(e.Extensions, event.Extension{Name: ExtPartitionKey, Value: e.AggregateID})
	}
	if d.lsnText != "" { // "" for a row read from the table (TableRows)
		e.Extensions = append(e.Extensions, event.Extension{Name: ExtLSN, Value: d.lsnText})
	}
	if len(e.Extensions) > 2 || (len(e.Extensions) == 2 && e.Extensions[0].Name > e.Extensions[1].Name) {
		slices.SortFunc(e.Extensions, func(a, b event.Extension) int { return strings.Compare(a.Name, b.Name) })
	}
	e.Seq = d.seq
	d.seq++
}

func (d *Decoder) data(rel *relation, cols []column, e *event.Event) string {
	v, ok, bad := rel.text(cols, fData)
	if bad != "" {
		return bad
	}
	if !ok {
		e.DataKind = event.DataNone
		return ""
	}
	jsonCT := event.IsJSONContentType(e.DataContentType)
	switch oid := rel.cols[rel.idx[fData]].oid; oid {
	case pgtype.JSONBOID, pgtype.JSONOID:
		// jsonb is normalized by the server (no duplicate member names, no
		// lone surrogates; rowText checked its characters); json keeps the
		// text as written.
		if oid == pgtype.JSONOID {
			if reason, _ := d.jc.check(v); reason != "" {
				return "is not valid in the CloudEvents JSON format: " + reason
			}
		}
		e.Data = bytes.Clone(v)
		if jsonCT {
			e.DataKind = event.DataJSON
		} else {
			e.DataKind = event.DataText
		}
	case pgtype.ByteaOID:
		if len(v) < 2 || v[0] != '\\' || v[1] != 'x' {
			return "bytea value is not in hex format (set bytea_output = 'hex')"
		}
		b := make([]byte, hex.DecodedLen(len(v)-2))
		if _, err := hex.Decode(b, v[2:]); err != nil {
			return "bytea value is not valid hex: " + err.Error()
		}
		e.Data, e.DataKind = b, event.DataBinary
		// Bytes are embedded as JSON only when they are I-JSON; anything
		// else travels byte for byte as data_base64.
		if jsonCT {
			if reason, _ := d.jc.check(b); reason == "" {
				e.DataKind = event.DataJSON
			}
		}
	default:
		e.Data = bytes.Clone(v)
		if jsonCT {
			if reason, syntax := d.jc.check(v); reason != "" {
				if !syntax {
					return "is not valid in the CloudEvents JSON format: " + reason
				}
				ct := e.DataContentType
				if ct == "" {
					ct = "(default application/json)"
				}
				return fmt.Sprintf("is not valid JSON but datacontenttype is %s: %s", ct, reason)
			}
			e.DataKind = event.DataJSON
		} else {
			e.DataKind = event.DataText
		}
	}
	return ""
}

func (d *Decoder) time(rel *relation, cols []column, e *event.Event) string {
	v, ok, bad := rel.text(cols, fTime)
	if bad != "" {
		return bad
	}
	if !ok {
		e.Time = d.commitTime
		return ""
	}
	if rel.timeOID != pgtype.DateOID {
		if t, ok := parseTimestamp(v); ok {
			e.Time = t
			return validYear(t)
		}
	}
	var t pgtype.Timestamptz
	switch rel.timeOID {
	case pgtype.TimestampOID:
		var ts pgtype.Timestamp
		if err := d.types.Scan(pgtype.TimestampOID, pgtype.TextFormatCode, v, &ts); err != nil {
			return err.Error()
		}
		t = pgtype.Timestamptz{Time: ts.Time, InfinityModifier: ts.InfinityModifier, Valid: ts.Valid}
	case pgtype.DateOID:
		var dt pgtype.Date
		if err := d.types.Scan(pgtype.DateOID, pgtype.TextFormatCode, v, &dt); err != nil {
			return err.Error()
		}
		t = pgtype.Timestamptz{Time: dt.Time, InfinityModifier: dt.InfinityModifier, Valid: dt.Valid}
	default:
		if err := d.types.Scan(pgtype.TimestamptzOID, pgtype.TextFormatCode, v, &t); err != nil {
			return err.Error()
		}
	}
	if t.InfinityModifier != pgtype.Finite {
		return "infinite timestamps cannot be a CloudEvents time"
	}
	e.Time = t.Time.UTC()
	return validYear(e.Time)
}

// validYear reports why t cannot be an RFC 3339 timestamp, or "".
func validYear(t time.Time) string {
	if y := t.Year(); y < 1 || y > 9999 {
		return fmt.Sprintf("year %d cannot be written as an RFC 3339 time", y)
	}
	return ""
}

// validMediaType reports why ct is not an RFC 2046 media type, or "".
func validMediaType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") || strings.HasSuffix(mt, "/") || strings.HasPrefix(mt, "/") {
		return fmt.Sprintf("%q is not a media type such as application/json", ct)
	}
	return ""
}

func (d *Decoder) headers(rel *relation, cols []column, e *event.Event) string {
	v, ok, bad := rel.text(cols, fHeaders)
	if bad != "" {
		return bad
	}
	if !ok || len(v) == 0 || string(v) == "null" || string(v) == "{}" {
		return ""
	}
	if rel.cols[rel.idx[fHeaders]].oid != pgtype.JSONBOID {
		// json and text keep duplicate names and lone surrogates.
		if reason, syntax := d.jc.check(v); reason != "" {
			if syntax {
				return "must be a JSON object of extension attributes: " + reason
			}
			return "is not valid in the CloudEvents JSON format: " + reason
		}
	}
	return parseHeaders(v, e)
}

func addExtensions(e *event.Event, m map[string]json.RawMessage) string {
	for name, raw := range m {
		if reason := validExtensionName(name); reason != "" {
			return reason
		}
		val, reason := extensionValue(name, raw)
		if reason != "" {
			return reason
		}
		if val == nil {
			continue
		}
		if reason := checkExtensionValue(name, *val); reason != "" {
			return reason
		}
		e.Extensions = append(e.Extensions, event.Extension{Name: name, Value: *val})
	}
	return ""
}

func validExtensionName(name string) string {
	if name == "" {
		return "has an empty extension attribute name"
	}
	if reserved[name] {
		return fmt.Sprintf("extension %q uses a reserved attribute name", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return fmt.Sprintf("extension name %q is not allowed: CloudEvents attribute names use only lower-case letters a-z and digits 0-9", name)
		}
	}
	return ""
}

func extensionValue(name string, raw json.RawMessage) (*string, string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, ""
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Sprintf("extension %q: %v", name, err)
		}
		return &s, ""
	case '{', '[':
		return nil, fmt.Sprintf("extension %q must be a string, number or boolean, not %s", name, kindOf(raw[0]))
	default:
		s := string(raw)
		return &s, ""
	}
}

func kindOf(c byte) string {
	if c == '{' {
		return "an object"
	}
	return "an array"
}

// checkExtensionValue reports why value cannot be the extension attribute
// name, or "": the dataref extension is a URI-reference.
func checkExtensionValue(name, value string) string {
	if name == "dataref" {
		if reason := validURIRef(value); reason != "" {
			return fmt.Sprintf("extension %q: %s", name, reason)
		}
	}
	return ""
}
