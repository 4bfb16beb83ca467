package kafka

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outbox-cdc/outbox-cdc/event"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{Brokers: []string{"127.0.0.1:9092"}}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"everything", func(c *Config) {
			*c = Config{Brokers: []string{"a:1", "b:2"}, ClientID: "x", Topic: "t.{{.AggregateType}}", ContentMode: "structured",
				CreateTopics: true, Partitions: 6, ReplicationFactor: 3, TopicConfig: map[string]string{"retention.ms": "1"},
				Compression: "zstd", Linger: time.Millisecond, BatchMaxBytes: 1 << 20, MaxInFlight: 5, ConnectTimeout: time.Second,
				TLS:  TLSConfig{CAFile: "ca", CertFile: "c", KeyFile: "k"},
				SASL: SASLConfig{Mechanism: "scram-sha-512", Username: "u", Password: "p"}}
		}, ""},
		{"no brokers", func(c *Config) { c.Brokers = nil }, "brokers"},
		{"broker without port", func(c *Config) { c.Brokers = []string{"localhost"} }, "host:port"},
		{"bad template", func(c *Config) { c.Topic = "{{.Nope}}" }, "topic"},
		{"bad fixed topic", func(c *Config) { c.Topic = "a/b" }, "Kafka allows only"},
		{"bad mode", func(c *Config) { c.ContentMode = "batch" }, "content_mode"},
		{"bad compression", func(c *Config) { c.Compression = "brotli" }, "compression"},
		{"partitions without create", func(c *Config) { c.Partitions = 3 }, "create_topics"},
		{"batch too small", func(c *Config) { c.BatchMaxBytes = 10 }, "batch_max_bytes"},
		{"negative in flight", func(c *Config) { c.MaxInFlight = -1 }, "max_in_flight"},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "c" }, "cert_file and key_file"},
		{"bad mechanism", func(c *Config) { c.SASL = SASLConfig{Mechanism: "GSSAPI", Username: "u", Password: "p"} }, "GSSAPI"},
		{"mechanism without password", func(c *Config) { c.SASL = SASLConfig{Mechanism: "PLAIN", Username: "u"} }, "username and password"},
		{"password without mechanism", func(c *Config) { c.SASL = SASLConfig{Username: "u", Password: "p"} }, "without a mechanism"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "p\"") && c.SASL.Password != "" {
				t.Fatalf("password in error: %v", err)
			}
		})
	}
}

// TestBinaryHeaders pins the binary-mode record for one event: header
// names, order and values as the Kafka protocol binding 1.0 maps them.
func TestBinaryHeaders(t *testing.T) {
	t.Parallel()
	e := &event.Event{
		ID: "id-1", Source: "/src", Type: "com.example.t", Subject: "sub", DataSchema: "https://s",
		DataContentType: "application/json", Time: time.Date(2024, 1, 2, 3, 4, 5, 600000000, time.FixedZone("x", 3600)),
		Extensions:  []event.Extension{{Name: "partitionkey", Value: "agg-9"}, {Name: "pglsn", Value: "0/16B3748"}},
		Data:        []byte(`{"a":1}`),
		DataKind:    event.DataJSON,
		AggregateID: "agg-9",
	}
	var ext extHeaders
	r := &rec{}
	r.build(e, "topic", false, time.Unix(0, 0), &ext)
	want := []string{
		"ce_specversion=1.0", "ce_id=id-1", "ce_source=/src", "ce_type=com.example.t", "ce_subject=sub",
		"ce_time=2024-01-02T02:04:05.6Z", "ce_dataschema=https://s", "content-type=application/json",
		"ce_partitionkey=agg-9", "ce_pglsn=0/16B3748",
	}
	var got []string
	for _, h := range r.kr.Headers {
		got = append(got, h.Key+"="+string(h.Value))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("headers\n got %q\nwant %q", got, want)
	}
	if string(r.kr.Key) != "agg-9" || string(r.kr.Value) != `{"a":1}` || r.kr.Topic != "topic" {
		t.Fatalf("record key %q value %q topic %q", r.kr.Key, r.kr.Value, r.kr.Topic)
	}
}

// TestRecordWireSize pins the size estimate against the v2 record encoding
// franz-go writes (kgo.Record.AppendFormat has no size helper, so encode by
// hand with the protocol's varints for a few shapes).
func TestRecordWireSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key, value int
		headers    int
	}{{1, 0, 0}, {10, 100, 3}, {60, 63, 0}, {64, 200, 5}, {100, 20000, 12}} {
		r := &kgo.Record{Key: make([]byte, tc.key), Value: make([]byte, tc.value)}
		for i := range tc.headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: strings.Repeat("k", i+1), Value: make([]byte, 70*i)})
		}
		body := []byte{0, 0, 0} // attributes, timestamp delta, offset delta
		body = appendVarint(body, len(r.Key))
		body = append(body, r.Key...)
		body = appendVarint(body, len(r.Value))
		body = append(body, r.Value...)
		body = appendVarint(body, len(r.Headers))
		for _, h := range r.Headers {
			body = appendVarint(body, len(h.Key))
			body = append(body, h.Key...)
			body = appendVarint(body, len(h.Value))
			body = append(body, h.Value...)
		}
		want := len(appendVarint(nil, len(body))) + len(body)
		if got := recordWireSize(r); got != want {
			t.Fatalf("%+v: size %d, want %d", tc, got, want)
		}
	}
}

func appendVarint(b []byte, n int) []byte {
	u := uint64(n)<<1 ^ uint64(int64(n)>>63)
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}
