package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ParseJSON reads one event in the CloudEvents JSON format, as AppendJSON
// writes it: for replaying a stored event. Every extension is kept; the
// partitionkey extension also sets AggregateID.
func ParseJSON(b []byte) (*Event, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("event: not a CloudEvent in JSON: %w", err)
	}
	e := &Event{}
	str := func(name string) (string, error) {
		raw, ok := m[name]
		delete(m, name)
		if !ok || string(raw) == "null" {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("event: attribute %s must be a string", name)
		}
		return s, nil
	}
	var err error
	var spec, ts string
	for _, f := range []struct {
		name string
		dst  *string
	}{{"specversion", &spec}, {"id", &e.ID}, {"source", &e.Source}, {"type", &e.Type}, {"subject", &e.Subject},
		{"datacontenttype", &e.DataContentType}, {"dataschema", &e.DataSchema}, {"time", &ts}} {
		if *f.dst, err = str(f.name); err != nil {
			return nil, err
		}
	}
	if spec != SpecVersion {
		return nil, fmt.Errorf("event: specversion %q, want %s", spec, SpecVersion)
	}
	if e.ID == "" || e.Source == "" || e.Type == "" {
		return nil, errors.New("event: id, source and type are required")
	}
	if ts != "" {
		if e.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return nil, fmt.Errorf("event: time: %w", err)
		}
	}
	if raw, ok := m["data"]; ok {
		delete(m, "data")
		if IsJSONContentType(e.DataContentType) {
			e.Data, e.DataKind = bytes.Clone(raw), DataJSON
		} else {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				e.Data, e.DataKind = []byte(s), DataText
			} else {
				e.Data, e.DataKind = bytes.Clone(raw), DataJSON
			}
		}
	}
	if raw, ok := m["data_base64"]; ok {
		delete(m, "data_base64")
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errors.New("event: data_base64 must be a string")
		}
		if e.Data, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, fmt.Errorf("event: data_base64: %w", err)
		}
		e.DataKind = DataBinary
	}
	for name, raw := range m {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			v = string(raw)
		}
		e.Extensions = append(e.Extensions, Extension{Name: name, Value: v})
		if name == "partitionkey" {
			e.AggregateID = v
		}
	}
	slices.SortFunc(e.Extensions, func(a, b Extension) int { return strings.Compare(a.Name, b.Name) })
	e.Size = 256 + len(b)
	return e, nil
}
