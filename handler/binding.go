package handler

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/outbox-cdc/outbox-cdc/event"
)

// StructuredContentType is the media type of the CloudEvents JSON format,
// which marks structured content mode in every protocol binding.
const StructuredContentType = "application/cloudevents+json"

// IsStructured reports whether a message's content type says structured
// mode: application/cloudevents+json, with or without parameters (or any
// application/cloudevents+<format>; only JSON is supported).
func IsStructured(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(contentType))
	}
	return strings.HasPrefix(mt, "application/cloudevents")
}

// FromStructured decodes an event in the CloudEvents JSON format
// (structured mode), as any CloudEvents producer writes it, and validates
// it.
func FromStructured(b []byte) (cloudevents.Event, error) {
	var e cloudevents.Event
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("not a CloudEvent in the JSON format: %w", err)
	}
	if err := e.Validate(); err != nil {
		return e, fmt.Errorf("invalid CloudEvent: %w", err)
	}
	return e, nil
}

// FromBinary builds an event from binary content mode: attrs maps attribute
// names (without the binding's prefix: "id", "source", "datacontenttype",
// "partitionkey", ...) to their string values, data is the payload. The
// event is validated.
func FromBinary(attrs map[string]string, data []byte) (cloudevents.Event, error) {
	sv := attrs["specversion"]
	if sv == "" {
		return cloudevents.Event{}, errors.New("binary mode: no specversion attribute")
	}
	e := cloudevents.New(sv)
	var errs []error
	for name, v := range attrs {
		var err error
		switch name {
		case "specversion", "datacontenttype":
		case "id":
			e.SetID(v)
		case "source":
			e.SetSource(v)
		case "type":
			e.SetType(v)
		case "subject":
			e.SetSubject(v)
		case "dataschema":
			e.SetDataSchema(v)
		case "time":
			var t time.Time
			if t, err = time.Parse(time.RFC3339Nano, v); err == nil {
				e.SetTime(t)
			}
		default:
			err = e.Context.SetExtension(name, v)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("attribute %s: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return e, err
	}
	setData(&e, attrs["datacontenttype"], data)
	if err := e.Validate(); err != nil {
		return e, fmt.Errorf("invalid CloudEvent: %w", err)
	}
	return e, nil
}

// setData sets the payload as is: the JSON format then writes JSON data as
// JSON, text as a string and other bytes as data_base64.
func setData(e *cloudevents.Event, ct string, data []byte) {
	if ct != "" {
		e.SetDataContentType(ct)
	}
	if data == nil {
		return
	}
	e.DataEncoded = data
	e.DataBase64 = !event.IsJSONContentType(ct) && !utf8.Valid(data)
	if ct == "" && !json.Valid(data) {
		e.DataBase64 = !utf8.Valid(data)
	}
}

// FromOutbox converts an event of the relay (what the decoder built from an
// outbox row) into an SDK event, as the sinks' bindings would carry it.
func FromOutbox(o *event.Event) cloudevents.Event {
	e := cloudevents.New(event.SpecVersion)
	e.SetID(o.ID)
	e.SetSource(o.Source)
	e.SetType(o.Type)
	if o.Subject != "" {
		e.SetSubject(o.Subject)
	}
	if o.DataSchema != "" {
		e.SetDataSchema(o.DataSchema)
	}
	if !o.Time.IsZero() {
		e.SetTime(o.Time)
	}
	for _, x := range o.Extensions {
		_ = e.Context.SetExtension(x.Name, x.Value) // names checked by the decoder
	}
	if o.CommitLSN != 0 {
		if _, ok := e.Extensions()["pglsn"]; !ok {
			_ = e.Context.SetExtension("pglsn", event.FormatLSN(o.CommitLSN))
		}
	}
	if o.DataKind != event.DataNone {
		e.SetDataContentType(o.DataContentType)
		e.DataEncoded = o.Data
		e.DataBase64 = o.DataKind == event.DataBinary && !(event.IsJSONContentType(o.DataContentType) && json.Valid(o.Data))
	} else if o.DataContentType != "" {
		e.SetDataContentType(o.DataContentType)
	}
	return e
}
