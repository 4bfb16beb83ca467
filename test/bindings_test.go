package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding/format"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// sdkEvent is what each SDK read from a message.
type sdkEvent struct {
	Error           string          `json:"error"`
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	DataContentType string          `json:"datacontenttype"`
	PartitionKey    string          `json:"partitionkey"`
	TraceParent     string          `json:"traceparent"`
	Data            json.RawMessage `json:"data"`
}

// TestNATSDefaultReadByStockSDKs publishes an event through a NATS sink
// with no content_mode set and reads the message the way consumers using
// stock CloudEvents SDKs do, without configuring anything:
//
//   - the Go SDK's NATS JetStream protocol (sdk-go protocol/nats_jetstream):
//     its module is not on the module proxy this machine reaches, so the test
//     applies its read rule (binary only when a ce-specversion header is
//     present, structured otherwise) and, for structured, the sdk-go/v2
//     format.JSON decoder that protocol hands the payload to;
//   - the Python SDK (PyPI cloudevents): no NATS binding; its JSON event
//     format reader on the payload;
//   - the JavaScript SDK (npm cloudevents): no NATS binding; its generic
//     reader, HTTP.toEvent, on the message's headers and payload.
//
// Each must see the event's attributes, extensions and data. The default is
// structured mode, the mode of the released NATS binding (1.0.x).
func TestNATSDefaultReadByStockSDKs(t *testing.T) {
	b := natsBroker(t).(*natsKit)
	e := brokerEnv(t, b.sinkYAML("bus"))
	if strings.Contains(readFile(t, e.cfgPath), "content_mode") {
		t.Fatal("the sink sets content_mode: this test is about the default")
	}
	p := e.start()
	defer p.stop(t)
	waitFor(t, 15*time.Second, "streaming", func() bool { _, a := e.slot(); return a })
	e.exec(`INSERT INTO outbox (type, source, subject, aggregate_type, aggregate_id, data, headers)
		VALUES ('com.example.order.created', '/shop/orders', 'order/7', 'order', '7',
		        '{"order_id": 7, "note": "café"}', '{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}')`)

	var msg jetstream.Msg
	waitFor(t, 30*time.Second, "the message in the stream", func() bool {
		msg = lastNATSMessage(t, b)
		return msg != nil
	})
	want := sdkEvent{SpecVersion: "1.0", Source: "/shop/orders", Type: "com.example.order.created", Subject: "order/7",
		PartitionKey: "7", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	check := func(sdk string, got sdkEvent) {
		t.Helper()
		if got.Error != "" {
			t.Errorf("%s SDK cannot read the default NATS message (headers %v): %s", sdk, msg.Headers(), got.Error)
			return
		}
		if got.ID == "" || got.SpecVersion != want.SpecVersion || got.Source != want.Source || got.Type != want.Type ||
			got.Subject != want.Subject || got.PartitionKey != want.PartitionKey || got.TraceParent != want.TraceParent {
			t.Errorf("%s SDK read %+v, want the attributes %+v", sdk, got, want)
		}
		var data map[string]any
		if err := json.Unmarshal(got.Data, &data); err != nil || data["note"] != "café" || data["order_id"] != float64(7) {
			t.Errorf("%s SDK read data %s: %v", sdk, got.Data, err)
		}
	}

	t.Run("go sdk-go nats_jetstream", func(t *testing.T) {
		if msg.Headers().Get("ce-specversion") != "" {
			t.Fatalf("the message has a ce-specversion header: sdk-go's NATS protocols before binary support read every message as structured and fail on it")
		}
		ev := cloudevents.New()
		if err := format.JSON.Unmarshal(msg.Data(), &ev); err != nil {
			check("Go", sdkEvent{Error: err.Error()})
			return
		}
		got := sdkEvent{ID: ev.ID(), SpecVersion: ev.SpecVersion(), Source: ev.Source(), Type: ev.Type(), Subject: ev.Subject(),
			DataContentType: ev.DataContentType(), Data: ev.Data()}
		got.PartitionKey, _ = ev.Extensions()["partitionkey"].(string)
		got.TraceParent, _ = ev.Extensions()["traceparent"].(string)
		check("Go", got)
	})
	file := filepath.Join(t.TempDir(), "message.json")
	headers := map[string]string{}
	for k, v := range msg.Headers() {
		headers[strings.ToLower(k)] = v[0]
	}
	b2, _ := json.Marshal(map[string]any{"headers": headers, "data": base64.StdEncoding.EncodeToString(msg.Data())})
	writeFile(t, file, string(b2))
	t.Run("python cloudevents", func(t *testing.T) {
		py := filepath.Join(exampleDeps(t, "venv"), "bin", "python")
		check("Python", runSDK(t, exec.Command(py, "testdata/sdk/read.py", file)))
	})
	t.Run("javascript cloudevents", func(t *testing.T) {
		c := exec.Command("node", "testdata/sdk/read.js", file)
		c.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(exampleDeps(t, "node"), "node_modules"))
		check("JavaScript", runSDK(t, c))
	})
}

func runSDK(t *testing.T, c *exec.Cmd) sdkEvent {
	t.Helper()
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(c.Args, " "), err, stderr.String())
	}
	var ev sdkEvent
	if err := json.Unmarshal(out, &ev); err != nil {
		t.Fatalf("%s printed %q: %v", strings.Join(c.Args, " "), out, err)
	}
	return ev
}

// lastNATSMessage returns the newest message of the kit's stream, nil when
// there is none yet.
func lastNATSMessage(t *testing.T, k *natsKit) jetstream.Msg {
	t.Helper()
	nc, err := natsgo.Connect(k.n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, k.stream)
	if err != nil {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverLastPolicy})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
	if err != nil {
		return nil
	}
	return m
}
