package sinktest

import (
	"bytes"
	_ "embed"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// cloudEventsJSON is the CloudEvents 1.0 JSON schema (draft-07), from the
// CloudEvents specification (cloudevents/formats/cloudevents.json).
//
//go:embed cloudevents.json
var cloudEventsJSON []byte

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
)

// Schema returns the CloudEvents 1.0 JSON schema, compiled once, with
// format assertions on (uri-reference, date-time, ...).
func Schema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	schemaOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(cloudEventsJSON))
		if err != nil {
			schemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft7)
		c.AssertFormat()
		if schemaErr = c.AddResource("cloudevents.json", doc); schemaErr != nil {
			return
		}
		schema, schemaErr = c.Compile("cloudevents.json")
	})
	if schemaErr != nil {
		t.Fatalf("CloudEvents schema: %v", schemaErr)
	}
	return schema
}

// ValidateJSON checks one event in the CloudEvents JSON format against the
// schema and returns the schema's complaint, or nil. The schema allows only
// an object or a string as data, while the format allows any JSON value, so
// an event whose data is another JSON value (an array, a number) is checked
// without its data. A raw that is not JSON fails the test.
func ValidateJSON(t testing.TB, raw []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, raw)
	}
	if m, ok := inst.(map[string]any); ok {
		switch m["data"].(type) {
		case nil, string, map[string]any:
		default:
			delete(m, "data")
		}
	}
	return Schema(t).Validate(inst)
}
