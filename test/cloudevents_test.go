package test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
)

// cloudEventsSchema is the CloudEvents 1.0 JSON Schema with format
// assertions on.
func cloudEventsSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	return sinktest.Schema(t)
}

// validateCloudEvent checks one structured-mode event against the CloudEvents
// JSON schema and decodes it with the CloudEvents SDK.
func validateCloudEvent(t *testing.T, schema *jsonschema.Schema, raw []byte) cloudevents.Event {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, raw)
	}
	if err := schema.Validate(doc); err != nil {
		t.Fatalf("does not validate against the CloudEvents schema: %v\n%s", err, raw)
	}
	var ce cloudevents.Event
	if err := json.Unmarshal(raw, &ce); err != nil {
		t.Fatalf("the CloudEvents SDK cannot read it: %v\n%s", err, raw)
	}
	if err := ce.Validate(); err != nil {
		t.Fatalf("the CloudEvents SDK says it is invalid: %v\n%s", err, raw)
	}
	return ce
}

// Acceptance: every delivered event is a valid CloudEvent carrying the row's
// id, type, source, subject, time, data and partition key.
func TestDeliveredEventsAreCloudEvents(t *testing.T) {
	e := newEnv(t, "outbox: {messages: {enabled: true}}\n")
	schema := cloudEventsSchema(t)
	p := e.start()
	waitFor(t, 10*time.Second, "streaming", func() bool { _, a := e.slot(); return a })

	type row struct {
		id, typ, source, subject, aggID, data, created string
		headers                                        *string
	}
	hdr := `{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tenant": "acme", "retries": 3}`
	rows := []row{
		{typ: "order.created", source: "/shop/orders", subject: "order-1", aggID: "order-1", data: `{"total": 12.5, "items": [1, 2]}`, created: "2026-01-02 03:04:05.123456+00", headers: &hdr},
		{typ: "order.paid", source: "https://shop.example/orders", subject: "", aggID: "order-1", data: `{"paid": true}`, created: "2026-01-02 03:04:06+05:30"},
		{typ: "user.signed_up", source: "urn:shop:users", subject: "user-9", aggID: "user-9", data: `{"name": "Zoë \"Z\" O'Neil\n"}`, created: "2026-06-30 23:59:59.999999+00"},
	}
	for i := range rows {
		r := &rows[i]
		var subj *string
		if r.subject != "" {
			subj = &r.subject
		}
		err := e.pool.QueryRow(t.Context(), `INSERT INTO outbox (type, source, subject, aggregate_type, aggregate_id, data, headers, created_at)
			VALUES ($1, $2, $3, 'agg', $4, $5::jsonb, $6::jsonb, $7::timestamptz) RETURNING id::text, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), data::text`,
			r.typ, r.source, subj, r.aggID, r.data, r.headers, r.created).Scan(&r.id, &r.created, &r.data)
		if err != nil {
			t.Fatal(err)
		}
	}
	// A message event written without a table.
	e.exec(`SELECT pg_logical_emit_message(true, 'outbox', '{"specversion":"1.0","id":"msg-1","type":"ping","source":"/msg","partitionkey":"m","data":{"x":1}}')`)

	waitFor(t, 10*time.Second, "4 events", func() bool { return e.countLines() >= 4 })
	evs := e.readEvents()
	if len(evs) != 4 {
		t.Fatalf("got %d events, want 4", len(evs))
	}
	for i, r := range rows {
		ce := validateCloudEvent(t, schema, evs[i].raw)
		want, _ := time.Parse(time.RFC3339Nano, r.created)
		checks := []struct{ name, got, want string }{
			{"id", ce.ID(), r.id},
			{"type", ce.Type(), r.typ},
			{"source", ce.Source(), r.source},
			{"subject", ce.Subject(), r.subject},
			{"time", ce.Time().UTC().Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano)},
			{"datacontenttype", ce.DataContentType(), "application/json"},
			{"partitionkey", str(ce.Extensions()["partitionkey"]), r.aggID},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("event %d: %s = %q, want %q", i, c.name, c.got, c.want)
			}
		}
		if !jsonEqual(t, ce.Data(), []byte(r.data)) {
			t.Errorf("event %d: data = %s, want %s", i, ce.Data(), r.data)
		}
	}
	ext := validateCloudEvent(t, schema, evs[0].raw).Extensions()
	if str(ext["traceparent"]) != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" || str(ext["tenant"]) != "acme" || str(ext["retries"]) != "3" {
		t.Errorf("header extensions = %v", ext)
	}
	msg := validateCloudEvent(t, schema, evs[3].raw)
	if msg.ID() != "msg-1" || msg.Type() != "ping" || str(msg.Extensions()["partitionkey"]) != "m" || !jsonEqual(t, msg.Data(), []byte(`{"x":1}`)) {
		t.Errorf("message event = %v", msg)
	}
	p.stop(t)
}

func str(v any) string {
	if v == nil {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return false
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
