package test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

type kafkaKit struct {
	k     *harness.Kafka
	topic string

	mu  sync.Mutex
	cl  *kgo.Client // consumes topic from the start; reset with the topic
	got []received
}

var topicSeq atomic.Int64

func kafkaBroker(t *testing.T) broker {
	return shared(t, "kafka", func(ctx context.Context) (broker, func(), error) {
		k, err := harness.StartKafka(ctx, harness.KafkaOptions{})
		if err != nil {
			return nil, nil, err
		}
		return &kafkaKit{k: k}, func() { k.Close() }, nil
	})
}

func (k *kafkaKit) name() string { return "kafka" }

func (k *kafkaKit) sinkYAML(name string) string {
	k.mu.Lock()
	if k.cl != nil {
		k.cl.Close()
	}
	k.cl, k.got = nil, nil
	k.mu.Unlock()
	k.topic = fmt.Sprintf("e2e-%d-%d", time.Now().UnixNano(), topicSeq.Add(1))
	return fmt.Sprintf(`  - name: %s
    type: kafka
    kafka:
      brokers: [%q]
      topic: %s
      create_topics: true
      partitions: 4
      retry: {initial: 100ms, max: 1s}`, name, k.k.Addr(), k.topic)
}

func (k *kafkaKit) stop(t *testing.T) {
	t.Helper()
	if err := k.k.Stop(); err != nil {
		t.Fatal(err)
	}
}

func (k *kafkaKit) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := k.k.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// readAll returns every record of the topic so far, read by one consumer
// that started at the beginning (an independent reader) and is kept between
// calls. Records of one partition come in offset order.
func (k *kafkaKit) readAll(t *testing.T) []received {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cl == nil {
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.k.Addr()), kgo.ConsumeTopics(k.topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		k.cl = cl
		t.Cleanup(func() {
			k.mu.Lock()
			if k.cl == cl {
				cl.Close()
				k.cl = nil
			}
			k.mu.Unlock()
		})
	}
	for idle := 0; idle < 2; {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := k.cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			k.got = append(k.got, kafkaRecordEvent(t, r))
		})
		if n == 0 {
			idle++
		}
	}
	return slices.Clone(k.got)
}

// kafkaRecordEvent decodes a binary-mode record per the CloudEvents Kafka
// protocol binding into an SDK event, and validates it.
func kafkaRecordEvent(t *testing.T, r *kgo.Record) received {
	t.Helper()
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	ce := cloudevents.New(h["ce_specversion"])
	ce.SetID(h["ce_id"])
	ce.SetSource(h["ce_source"])
	ce.SetType(h["ce_type"])
	if v, ok := h["ce_subject"]; ok {
		ce.SetSubject(v)
	}
	if v, ok := h["ce_time"]; ok {
		ts, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			t.Fatalf("ce_time %q: %v", v, err)
		}
		ce.SetTime(ts)
	}
	if v, ok := h["ce_dataschema"]; ok {
		ce.SetDataSchema(v)
	}
	for key, v := range h {
		if name, ok := strings.CutPrefix(key, "ce_"); ok {
			switch name {
			case "specversion", "id", "source", "type", "subject", "time", "dataschema":
			default:
				ce.SetExtension(name, v)
			}
		}
	}
	if err := ce.SetData(h["content-type"], r.Value); err != nil {
		t.Fatal(err)
	}
	if err := ce.Validate(); err != nil {
		t.Fatalf("record at %s/%d@%d is not a valid CloudEvent: %v", r.Topic, r.Partition, r.Offset, err)
	}
	if string(r.Key) != ce.Extensions()["partitionkey"] {
		t.Fatalf("record key %q, partitionkey %v", r.Key, ce.Extensions()["partitionkey"])
	}
	return received{ce: ce, key: string(r.Key), headers: h}
}

// Acceptance: a wrong broker address and a missing topic with creation
// disabled fail at startup with the sink's name and the cause.
func TestKafkaStartupErrors(t *testing.T) {
	k := kafkaBroker(t).(*kafkaKit)
	port, _ := freePort()
	for _, tc := range []struct {
		name, section string
		want          []string
	}{
		{"wrong address", fmt.Sprintf("{brokers: [\"127.0.0.1:%d\"], topic: t, connect_timeout: 3s}", port), []string{"sink bus", fmt.Sprint(port)}},
		{"missing topic", fmt.Sprintf("{brokers: [%q], topic: no-such-topic-%d}", k.k.Addr(), time.Now().UnixNano()), []string{"sink bus", "no-such-topic"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := brokerEnv(t, "  - {name: bus, type: kafka, kafka: "+tc.section+"}")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := e.cli(ctx, "run")
			if err == nil {
				t.Fatalf("run succeeded:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output does not say %q:\n%s", w, out)
				}
			}
		})
	}
}
