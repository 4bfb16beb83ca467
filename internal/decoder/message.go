package decoder

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// ErrNonTransactional is wrapped by the *Error of a non-transactional
// logical decoding message with the outbox prefix.
var ErrNonTransactional = errors.New("decoder: non-transactional outbox message")

// message decodes a logical decoding message: with the configured prefix and
// the transactional flag it carries one CloudEvent in the JSON format. With
// the prefix but without the flag it is an *Error (ErrNonTransactional), for
// the invalid-row policy: such a message is written even when its
// transaction rolls back, and it is not part of any transaction the
// checkpoint could confirm, so it is never published.
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
	if d.cfg.MessagesOff {
		if !d.loggedMessagesOff {
			d.loggedMessagesOff = true
			d.logger.Warn("ignoring logical decoding messages with the outbox prefix: message events are off (set outbox.messages.enabled and run setup to lock pg_logical_emit_message down; see docs/security.md)",
				"prefix", string(prefix), "lsn", FormatLSN(lsn))
		}
		return nil
	}
	if flags&1 == 0 {
		s := string(content)
		return &Error{Table: "message " + string(prefix), RowID: messageID(content), LSN: lsn, Err: ErrNonTransactional,
			Reason: "a non-transactional message (pg_logical_emit_message(false, ...)) is written even when its transaction rolls back, so it is not published; emit events with pg_logical_emit_message(true, ...). outbox.on_invalid decides: block (stop here) or dead-letter (store it and go on)",
			Raw:    map[string]*string{"content": &s}}
	}
	if !d.inTx {
		return fmt.Errorf("%w: transactional message at LSN %s outside a transaction", ErrProtocol, FormatLSN(lsn))
	}
	e, err := d.messageEvent(content)
	if err != nil {
		s := err.content
		return d.failed(&Error{Table: "message " + string(prefix), RowID: err.id, LSN: d.commitLSN, Column: err.column, Reason: err.reason,
			Raw: map[string]*string{"content": &s}})
	}
	return h.Event(e)
}

// messageID returns the "id" member of a message's JSON content, or "".
func messageID(content []byte) string {
	var m struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(content, &m) != nil {
		return ""
	}
	if s, ok := m.ID.(string); ok {
		return s
	}
	return ""
}

type msgErr struct {
	column, reason string
	id             string
	content        string // the content as UTF-8, or as \x hex when it is not text
}

func (d *Decoder) messageEvent(content []byte) (e *event.Event, merr *msgErr) {
	var id string
	raw := content
	defer func() {
		if merr != nil {
			merr.id = id
			merr.content = rawText(content)
			if merr.id == "" { // name it if a lenient reading finds an id
				var m struct {
					ID string `json:"id"`
				}
				if json.Unmarshal(content, &m) == nil && utf8.ValidString(m.ID) {
					merr.id = m.ID
				}
			}
		}
	}()
	// Message content is sent as the server stored it, in any encoding, and
	// the bytea variant of pg_logical_emit_message takes any bytes.
	content, ok := d.enc.convert(raw)
	if !ok {
		content = raw
		if d.enc.kind == encUnchecked {
			return nil, &msgErr{reason: "content is not valid UTF-8" + d.uncheckedNote()}
		}
		return nil, &msgErr{reason: fmt.Sprintf("content is not valid %s text: it holds a byte sequence with no Unicode character", d.enc.name)}
	}
	if reason, syntax := d.jc.check(content); reason != "" {
		if syntax {
			return nil, &msgErr{reason: "content is not a CloudEvent in JSON: " + reason}
		}
		if strings.HasPrefix(reason, "invalid UTF-8") {
			return nil, &msgErr{reason: "content is " + reason + " (the bytea variant of pg_logical_emit_message takes any bytes)"}
		}
		return nil, &msgErr{reason: "content is not valid in the CloudEvents JSON format: " + reason}
	}
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
		if reason := validURI(e.DataSchema); reason != "" {
			return nil, &msgErr{column: "dataschema", reason: reason}
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
