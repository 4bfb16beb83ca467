package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
)

// loadErr loads yaml with env and returns the error text, failing the test
// when Load succeeds.
func loadErr(t *testing.T, yaml string, env ...string) string {
	t.Helper()
	_, err := config.Load(writeConfig(t, yaml), env, nil)
	if err == nil {
		t.Fatalf("Load succeeded:\n%s", yaml)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "config: ") {
		t.Errorf("error %q is not prefixed config:", msg)
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("error %q shows the password", msg)
	}
	return msg
}

// wantAll fails for every part missing from msg.
func wantAll(t *testing.T, msg string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("error does not say %q; it is:\n%s", p, msg)
		}
	}
}

// Issue 9, "Settings that are silently wrong": negative durations and sizes
// and a backoff that shrinks were accepted and replaced by defaults or used
// as they were. Each is now one named error, and all are reported at once.
func TestNegativeSettingsAreNamedAllAtOnce(t *testing.T) {
	t.Parallel()
	msg := loadErr(t, `
postgres:
  url: postgres://app:s3cret@127.0.0.1:5432/app
  status_interval: -5s
  drain_timeout: -1s
heartbeat: {interval: -3s}
window: {max_events: -1, max_bytes: -5}
http: {sink_timeout: -1s}
sinks:
  - name: out
    type: file
    path: /tmp/out.jsonl
    retry: {initial: -1s, multiplier: 0.1}
`)
	wantAll(t, msg,
		"config: postgres.status_interval: must be positive",
		"config: postgres.drain_timeout: must be positive",
		"config: heartbeat.interval: must be positive",
		"config: window.max_events: must be positive",
		"config: window.max_bytes: must be positive",
		"config: http.sink_timeout: must be positive",
		"config: sinks[0].retry.initial: must be positive",
		"config: sinks[0].retry.multiplier: must be at least 1",
	)

	// Each problem is a *config.KeyError naming its key and its line.
	_, err := config.Load(writeConfig(t, "postgres: {url: 'host=db', status_interval: -5s}\nsinks: [{name: s, type: stdout, retry: {multiplier: 0.1}}]\n"), nil, nil)
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Load = %v, want joined errors", err)
	}
	var keys []string
	for _, e := range joined.Unwrap() {
		var ke *config.KeyError
		if !errors.As(e, &ke) {
			t.Fatalf("%v is not a *config.KeyError", e)
		}
		if !strings.HasPrefix(ke.Where, "line 1 of ") && !strings.HasPrefix(ke.Where, "line 2 of ") {
			t.Errorf("%s: Where = %q, want its line", ke.Key, ke.Where)
		}
		keys = append(keys, ke.Key)
	}
	if want := []string{"postgres.status_interval", "sinks[0].retry.multiplier"}; !slices.Equal(keys, want) {
		t.Errorf("keys = %q, want %q", keys, want)
	}
}

// Zero keeps meaning "the default" where the documentation says so.
func TestZeroMeansDefault(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(writeConfig(t, `
postgres: {url: 'host=db', status_interval: 0s, drain_timeout: 0s}
heartbeat: {interval: 0s}
window: {max_events: 0, max_bytes: 0}
http: {sink_timeout: 0s}
sinks: [{name: s, type: stdout, retry: {initial: 0s, multiplier: 0}}]
`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := wiring.Replication(cfg); r.StatusInterval <= 0 || r.DrainTimeout <= 0 {
		t.Errorf("wiring.Replication = %+v, want the default intervals", r)
	}
	if cfg.Heartbeat.Interval <= 0 {
		t.Errorf("heartbeat.interval = %v, want the default", cfg.Heartbeat.Interval)
	}
	if c := wiring.Checkpoint(cfg); c.MaxEvents <= 0 || c.MaxBytes <= 0 {
		t.Errorf("wiring.Checkpoint = %+v, want the default window", c)
	}
}

// Issue 9: a wrong type, an environment index past the end, an unusable
// http.addr, two file sinks writing one file and a broker section on a sink
// of another type are each an error at load time naming the key or the
// variable.
func TestLoadTimeErrorsNameTheKey(t *testing.T) {
	t.Parallel()
	const pg = "postgres: {url: 'postgres://app:s3cret@127.0.0.1:5432/app'}\n"
	const one = pg + "sinks: [{name: a, type: file, path: /tmp/a.jsonl}]\n"
	for _, tc := range []struct {
		name string
		yaml string
		env  []string
		want []string
		not  []string
	}{
		{"wrong type", one + "window: {max_events: lots}\n", nil,
			[]string{"window.max_events", "lots", "line 3"}, nil},
		{"wrong type in a list item", pg + "sinks: [{name: a, type: file, path: /tmp/a, max_batch: many}]\n", nil,
			[]string{"sinks[0].max_batch", "many", "line 2"}, nil},
		{"wrong type, a list for a duration", "postgres: {url: 'host=db', status_interval: [1s]}\nsinks: [{name: a, type: stdout}]\n", nil,
			[]string{"postgres.status_interval", "line 1"}, nil},
		{"environment index past the end", one, []string{"OUTBOX_CDC_SINKS_5_PATH=/tmp/x"},
			[]string{"OUTBOX_CDC_SINKS_5_PATH", "sinks has 1 entry"}, []string{"sinks[1].name is required"}},
		{"environment index past the end of two new entries", one,
			[]string{"OUTBOX_CDC_SINKS_1_NAME=b", "OUTBOX_CDC_SINKS_1_TYPE=stdout", "OUTBOX_CDC_SINKS_3_TYPE=stdout"},
			[]string{"OUTBOX_CDC_SINKS_3_TYPE"}, []string{"OUTBOX_CDC_SINKS_1_"}},
		{"http.addr not host:port", one + "http: {addr: nonsense}\n", nil,
			[]string{"config: http.addr", `"nonsense"`, "host:port", `"-"`}, nil},
		{"http.addr with a bad port", one + "http: {addr: '127.0.0.1:http-ish'}\n", nil,
			[]string{"config: http.addr"}, nil},
		{"http.addr from the environment", one, []string{"OUTBOX_CDC_HTTP_ADDR=nonsense"},
			[]string{"config: http.addr", "OUTBOX_CDC_HTTP_ADDR"}, nil},
		{"two file sinks on one path", pg + "sinks: [{name: a, type: file, path: /tmp/a.jsonl}, {name: b, type: file, path: /tmp/./a.jsonl}]\n", nil,
			[]string{"config: sinks[1].path", "sinks[0]", "/tmp/a.jsonl"}, nil},
		{"two sinks on standard output", pg + "sinks: [{name: a, type: stdout}, {name: b, type: file, path: '-'}]\n", nil,
			[]string{"config: sinks[1].path", "sinks[0]"}, nil},
		{"kafka section on a file sink", pg + "sinks: [{name: a, type: file, path: /tmp/a, kafka: {brokers: ['127.0.0.1:9092']}}]\n", nil,
			[]string{"config: sinks[0].kafka", "file"}, nil},
		{"nats section on a stdout sink", pg + "sinks: [{name: a, type: stdout, nats: {stream: {name: S}}}]\n", nil,
			[]string{"config: sinks[0].nats", "stdout"}, nil},
		{"redis section on a kafka sink", pg + "sinks: [{name: a, type: kafka, kafka: {brokers: ['127.0.0.1:9092']}, redis: {}}]\n", nil,
			[]string{"config: sinks[0].redis", "kafka"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			msg := loadErr(t, tc.yaml, tc.env...)
			wantAll(t, msg, tc.want...)
			for _, n := range tc.not {
				if strings.Contains(msg, n) {
					t.Errorf("error says %q; it is:\n%s", n, msg)
				}
			}
		})
	}
}

// Enumerations are refused while the YAML is decoded, with the key path and
// the line.
func TestEnumsRejectedWhileDecoding(t *testing.T) {
	t.Parallel()
	const pg = "postgres: {url: 'host=db'}\n"
	for _, tc := range []struct {
		name, yaml, key, value string
	}{
		{"sink type", pg + "sinks: [{name: a, type: carrier-pigeon}]\n", "sinks[0].type", "carrier-pigeon"},
		{"policy", pg + "sinks: [{name: a, type: stdout, policy: sometimes}]\n", "sinks[0].policy", "sometimes"},
		{"on_invalid", pg + "sinks: [{name: a, type: stdout}]\noutbox: {on_invalid: skip}\n", "outbox.on_invalid", "skip"},
		{"log level", pg + "sinks: [{name: a, type: stdout}]\nlog: {level: verbose}\n", "log.level", "verbose"},
		{"log format", pg + "sinks: [{name: a, type: stdout}]\nlog: {format: xml}\n", "log.format", "xml"},
		{"kafka content mode", pg + "sinks: [{name: a, type: kafka, kafka: {brokers: ['h:1'], content_mode: binaryish}}]\n", "sinks[0].kafka.content_mode", "binaryish"},
		{"nats content mode", pg + "sinks: [{name: a, type: nats, nats: {stream: {name: S}, content_mode: xml}}]\n", "sinks[0].nats.content_mode", "xml"},
		{"redis content mode", pg + "sinks: [{name: a, type: redis, redis: {content_mode: json}}]\n", "sinks[0].redis.content_mode", "json"},
		{"redis dedup", pg + "sinks: [{name: a, type: redis, redis: {dedup: always}}]\n", "sinks[0].redis.dedup", "always"},
		{"kafka compression", pg + "sinks: [{name: a, type: kafka, kafka: {brokers: ['h:1'], compression: brotli}}]\n", "sinks[0].kafka.compression", "brotli"},
		{"kafka sasl mechanism", pg + "sinks: [{name: a, type: kafka, kafka: {brokers: ['h:1'], sasl: {mechanism: KERBEROS, username: u, password: p}}}]\n", "sinks[0].kafka.sasl.mechanism", "KERBEROS"},
		{"nats storage", pg + "sinks: [{name: a, type: nats, nats: {stream: {name: S, create: true, storage: tape}}}]\n", "sinks[0].nats.stream.storage", "tape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			msg := loadErr(t, tc.yaml)
			wantAll(t, msg, tc.key, `"`+tc.value+`"`, "line ")
		})
	}
}

// Every problem of a file is reported in one go: decoding errors (unknown
// keys, wrong types, bad enumerations) and validation errors together, and a
// key that failed to decode is not reported a second time as missing.
func TestEveryProblemReportedAtOnce(t *testing.T) {
	t.Parallel()
	msg := loadErr(t, `
postgres:
  url: 'host=db'
  ulr: typo
  standby_poll: -1s
window: {max_events: lots}
log: {level: verbose}
sinks:
  - {name: a, type: carrier-pigeon}
  - {type: stdout, policy: sometimes}
  - {name: c, type: file, path: /tmp/c, kafka: {brokers: ['h:1']}}
`)
	wantAll(t, msg,
		"unknown config key ulr",
		"postgres.standby_poll: must be positive",
		"window.max_events",
		"log.level",
		"sinks[0].type",
		"sinks[1].name is required",
		"sinks[1].policy",
		"sinks[2].kafka",
	)
	if n := strings.Count(msg, "sinks[0]"); n != 1 {
		t.Errorf("sinks[0] named %d times, want once (the bad type, not again as missing):\n%s", n, msg)
	}
	if n := strings.Count(msg, "\n") + 1; n != 8 {
		t.Errorf("%d problems reported, want 8:\n%s", n, msg)
	}
}

// One name per concept: every backoff setting is called retry. The old names
// still load, with a warning naming the new key.
func TestBackoffIsCalledRetry(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(writeConfig(t, `
postgres:
  url: 'host=db'
  retry: {initial: 1s, max: 20s, multiplier: 3}
sinks:
  - name: k
    type: kafka
    kafka:
      brokers: ['127.0.0.1:9092']
      retry: {initial: 50ms, max: 1s}
`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := wiring.Replication(cfg).Retry; r.Initial.String() != "1s" || r.Max.String() != "20s" || r.Multiplier != 3 {
		t.Errorf("postgres.retry = %+v", r)
	}
	if r := wiring.Kafka(cfg.Sinks[0]).Retry; r.Initial.String() != "50ms" || r.Max.String() != "1s" {
		t.Errorf("sinks[0].kafka.retry = %+v", r)
	}

	var warn warnings
	cfg, err = config.Load(writeConfig(t, `
postgres:
  url: 'host=db'
  reconnect: {max: 20s}
sinks:
  - name: k
    type: kafka
    kafka: {brokers: ['127.0.0.1:9092'], backoff: {max: 1s}}
`), []string{"OUTBOX_CDC_SINKS_0_KAFKA_BACKOFF_INITIAL=30ms"}, warn.add)
	if err != nil {
		t.Fatal(err)
	}
	if r := wiring.Replication(cfg).Retry; r.Max.String() != "20s" {
		t.Errorf("postgres.reconnect did not set postgres.retry: %+v", r)
	}
	if r := wiring.Kafka(cfg.Sinks[0]).Retry; r.Max.String() != "1s" || r.Initial.String() != "30ms" {
		t.Errorf("kafka.backoff did not set kafka.retry: %+v", r)
	}
	all := strings.Join(warn, "\n")
	wantAll(t, all, "postgres.reconnect", "postgres.retry", "sinks[0].kafka.backoff", "sinks[0].kafka.retry", "OUTBOX_CDC_SINKS_0_KAFKA_BACKOFF_INITIAL")
}
