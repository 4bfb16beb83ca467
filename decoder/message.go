package decoder

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// message decodes a logical decoding message: with the configured prefix and
// the transactional flag it carries one CloudEvent in the JSON format.
func (d *Decoder) message(r *reader, walStart uint64, h Handler) error {
	flags := r.u8("message flags")
	lsn := r.u64("message LSN")
	prefix := r.cstring("message prefix")
	n := r.u32("message length")
	content := r.bytes(int(n), "message content")
	if r.err != nil {
		return r.err
	}
	if d.catalog != nil && flags&1 != 0 && d.inTx && string(prefix) == DDLMessagePrefix {
		return d.catalog.Changed(d.commitLSN)
	}
	if d.cfg.MessagePrefix == "-" || string(prefix) != d.cfg.MessagePrefix {
		return nil // heartbeats and other prefixes are not events
	}
	if flags&1 == 0 || !d.inTx {
		d.logger.Warn("ignoring a non-transactional outbox message: emit events with pg_logical_emit_message(true, ...)",
			"prefix", string(prefix), "lsn", FormatLSN(lsn))
		return nil
	}
	e, err := d.messageEvent(content)
	if err != nil {
		s := string(content)
		return &Error{Table: "message " + string(prefix), RowID: err.id, LSN: d.commitLSN, Column: err.column, Reason: err.reason,
			Raw: map[string]*string{"content": &s}}
	}
	return h.Event(e)
}

type msgErr struct {
	column, reason string
	id             string
}

func (d *Decoder) messageEvent(content []byte) (e *event.Event, merr *msgErr) {
	var id string
	defer func() {
		if merr != nil {
			merr.id = id
		}
	}()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(content, &m); err != nil {
		return nil, &msgErr{column: "", reason: "content is not a CloudEvent in JSON: " + err.Error()}
	}
	e = &event.Event{CommitLSN: d.commitLSN, CommitTime: d.commitTime}
	str := func(name string, required bool) (string, *msgErr) {
		raw, ok := m[name]
		delete(m, name)
		if !ok || string(raw) == "null" {
			if required {
				return "", &msgErr{column: name, reason: "is missing; a CloudEvent requires " + name}
			}
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", &msgErr{column: name, reason: "must be a string"}
		}
		if s == "" && required {
			return "", &msgErr{column: name, reason: "is empty; a CloudEvent requires " + name}
		}
		return s, nil
	}
	var err *msgErr
	var spec string
	if spec, err = str("specversion", false); err != nil {
		return nil, err
	}
	if spec != "" && spec != event.SpecVersion {
		return nil, &msgErr{column: "specversion", reason: fmt.Sprintf("is %q; only 1.0 is supported", spec)}
	}
	if e.ID, err = str("id", true); err != nil {
		return nil, err
	}
	id = e.ID
	if e.Type, err = str("type", true); err != nil {
		return nil, err
	}
	if e.Source, err = str("source", false); err != nil {
		return nil, err
	}
	if e.Source == "" {
		if e.Source = d.cfg.DefaultSource; e.Source == "" {
			return nil, &msgErr{column: "source", reason: "is missing and no default_source is configured"}
		}
	}
	if reason := validURIRef(e.Source); reason != "" {
		return nil, &msgErr{column: "source", reason: reason}
	}
	if e.Subject, err = str("subject", false); err != nil {
		return nil, err
	}
	if e.DataContentType, err = str("datacontenttype", false); err != nil {
		return nil, err
	}
	if reason := validMediaType(e.DataContentType); reason != "" {
		return nil, &msgErr{column: "datacontenttype", reason: reason}
	}
	if e.DataSchema, err = str("dataschema", false); err != nil {
		return nil, err
	}
	if e.DataSchema != "" {
		if u, perr := url.Parse(e.DataSchema); perr != nil || !u.IsAbs() {
			return nil, &msgErr{column: "dataschema", reason: fmt.Sprintf("%q is not an absolute URI", e.DataSchema)}
		}
	}
	var ts string
	if ts, err = str("time", false); err != nil {
		return nil, err
	}
	if ts == "" {
		e.Time = d.commitTime
	} else {
		t, perr := time.Parse(time.RFC3339Nano, ts)
		if perr != nil {
			return nil, &msgErr{column: "time", reason: "is not an RFC 3339 timestamp: " + perr.Error()}
		}
		e.Time = t.UTC()
		if reason := validYear(e.Time); reason != "" {
			return nil, &msgErr{column: "time", reason: reason}
		}
	}
	if raw, ok := m["data"]; ok {
		delete(m, "data")
		if string(raw) != "null" {
			if event.IsJSONContentType(e.DataContentType) {
				e.Data, e.DataKind = bytes.Clone(raw), event.DataJSON
			} else {
				var s string
				if json.Unmarshal(raw, &s) != nil {
					e.Data, e.DataKind = bytes.Clone(raw), event.DataJSON
				} else {
					e.Data, e.DataKind = []byte(s), event.DataText
				}
			}
		}
	}
	if raw, ok := m["data_base64"]; ok {
		delete(m, "data_base64")
		if e.DataKind != event.DataNone {
			return nil, &msgErr{column: "data_base64", reason: "an event has data or data_base64, not both"}
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, &msgErr{column: "data_base64", reason: "must be a base64 string"}
		}
		b, derr := base64.StdEncoding.DecodeString(s)
		if derr != nil {
			return nil, &msgErr{column: "data_base64", reason: "is not valid base64: " + derr.Error()}
		}
		e.Data, e.DataKind = b, event.DataBinary
	}
	if raw, ok := m[ExtPartitionKey]; ok {
		delete(m, ExtPartitionKey)
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, &msgErr{column: ExtPartitionKey, reason: "must be a string"}
		}
		e.AggregateID = s
	}
	if raw, ok := m["aggregatetype"]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			e.AggregateType = s
		}
	}
	delete(m, ExtLSN)
	if reason := addExtensions(e, m); reason != "" {
		return nil, &msgErr{column: "", reason: reason}
	}
	d.finish(e)
	e.Size = baseEventSize + len(content)
	return e, nil
}
