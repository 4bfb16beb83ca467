package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/checkpoint"
	"github.com/outbox-cdc/outbox-cdc/internal/decoder"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/file"
	"github.com/outbox-cdc/outbox-cdc/internal/wiring"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// writeConfig writes yaml to a file in a fresh directory and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "outbox-cdc.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// warnings collects warn calls.
type warnings []string

func (w *warnings) add(s string) { *w = append(*w, s) }

const everyKey = `
postgres:
  url: postgres://app:s3cret@127.0.0.1:5432/app
  slot: my_slot
  publication: my_pub
  status_interval: 250ms
  connect_timeout: 5s
  drain_timeout: 1m
  standby_poll: 2s
  retry:
    initial: 200ms
    max: 20s
    multiplier: 1.5
  roles:
    stream: outbox_stream
    writers: [app, billing]
outbox:
  tables:
    - name: app.events
      default_source: /app
      columns:
        id: event_id
        type: event_type
        source: origin
        subject: "-"
        aggregate_type: stream
        aggregate_id: stream_id
        data: payload
        datacontenttype: ct
        dataschema: schema_uri
        headers: meta
        time: occurred_at
    - name: public.outbox
  messages:
    enabled: true
    prefix: events
  heartbeat_prefix: hb
  default_source: /default
window:
  max_events: 100
  max_bytes: 1048576
sinks:
  - name: out
    type: file
    path: /var/lib/outbox-cdc/events.jsonl
    sync: true
    mode: "0640"
    max_batch: 10
    route:
      types: ["order.*", "*.created"]
      aggregate_types: [order, invoice]
  - name: console
    type: stdout
http:
  addr: 127.0.0.1:9999
heartbeat:
  interval: 3s
  disabled: true
log:
  level: debug
  format: json
`

// defaultColumns are the column names of a table that names none.
var defaultColumns = config.Columns{
	ID: "id", Type: "type", Source: "source", Subject: "subject", AggregateType: "aggregate_type",
	AggregateID: "aggregate_id", Data: "data", DataContentType: "datacontenttype", DataSchema: "dataschema",
	Headers: "headers", Time: "created_at",
}

// defaultSinkRetry is sinks[].retry's default.
var defaultSinkRetry = config.Backoff{Initial: retry.DefaultInitial, Max: retry.DefaultMax, Multiplier: retry.DefaultMultiplier}

// field is one loaded value and the value expected.
type field struct {
	key       string
	got, want any
}

func checkFields(t *testing.T, fields []field) {
	t.Helper()
	for _, f := range fields {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s = %#v, want %#v", f.key, f.got, f.want)
		}
	}
}

// everyKeyFields lists every key of everyKey with its expected value. They are
// compared one by one so that keys other packages add later do not break
// the test.
func everyKeyFields(c *config.Config) []field {
	return []field{
		{"postgres.url", c.Postgres.URL, "postgres://app:s3cret@127.0.0.1:5432/app"},
		{"postgres.slot", c.Postgres.Slot, "my_slot"},
		{"postgres.publication", c.Postgres.Publication, "my_pub"},
		{"postgres.status_interval", c.Postgres.StatusInterval, 250 * time.Millisecond},
		{"postgres.connect_timeout", c.Postgres.ConnectTimeout, 5 * time.Second},
		{"postgres.drain_timeout", c.Postgres.DrainTimeout, time.Minute},
		{"postgres.standby_poll", c.Postgres.StandbyPoll, 2 * time.Second},
		{"postgres.retry", c.Postgres.Retry, config.Backoff{Initial: 200 * time.Millisecond, Max: 20 * time.Second, Multiplier: 1.5}},
		{"outbox.tables", c.Outbox.Tables, []config.Table{
			{
				Name: "app.events", DefaultSource: "/app",
				Columns: config.Columns{
					ID: "event_id", Type: "event_type", Source: "origin", Subject: "-", AggregateType: "stream",
					AggregateID: "stream_id", Data: "payload", DataContentType: "ct", DataSchema: "schema_uri",
					Headers: "meta", Time: "occurred_at",
				},
			},
			{Name: "public.outbox", DefaultSource: "/default", Columns: defaultColumns}, // defaults filled in
		}},
		{"postgres.roles", c.Postgres.Roles, config.Roles{Stream: "outbox_stream", Writers: []string{"app", "billing"}}},
		{"outbox.messages", c.Outbox.Messages, config.Messages{Enabled: true, Prefix: "events"}},
		{"outbox.heartbeat_prefix", c.Outbox.HeartbeatPrefix, "hb"},
		{"outbox.default_source", c.Outbox.DefaultSource, "/default"},
		{"window.max_events", c.Window.MaxEvents, 100},
		{"window.max_bytes", c.Window.MaxBytes, int64(1 << 20)},
		{"len(sinks)", len(c.Sinks), 2},
		{"sinks[0].name", c.Sinks[0].Name, "out"},
		{"sinks[0].type", c.Sinks[0].Type, config.SinkFile},
		{"sinks[0].path", c.Sinks[0].Path, "/var/lib/outbox-cdc/events.jsonl"},
		{"sinks[0].sync", c.Sinks[0].Sync, true},
		{"sinks[0].mode", c.Sinks[0].Mode, "0640"},
		{"sinks[0].max_batch", c.Sinks[0].MaxBatch, 10},
		{"sinks[0].route", c.Sinks[0].Route, config.Route{Types: []string{"order.*", "*.created"}, AggregateTypes: []string{"order", "invoice"}}},
		{"sinks[1].name", c.Sinks[1].Name, "console"},
		{"sinks[1].type", c.Sinks[1].Type, config.SinkStdout},
		{"http.addr", c.HTTP.Addr, "127.0.0.1:9999"},
		{"heartbeat.interval", c.Heartbeat.Interval, 3 * time.Second},
		{"heartbeat.disabled", c.Heartbeat.Disabled, true},
		{"log.level", c.Log.Level, config.LogLevel("debug")},
		{"log.format", c.Log.Format, config.LogFormat("json")},
	}
}

func TestLoadEveryKey(t *testing.T) {
	t.Parallel()
	var warn warnings
	got, err := config.Load(writeConfig(t, everyKey), nil, warn.add)
	if err != nil {
		t.Fatal(err)
	}
	checkFields(t, everyKeyFields(got))
	if len(warn) != 0 {
		t.Errorf("warnings: %v", warn)
	}

	// The views handed to the other packages carry the same values.
	r := wiring.Replication(got)
	if r.URL != got.Postgres.URL || r.Slot != "my_slot" || r.Publication != "my_pub" || r.StatusInterval != 250*time.Millisecond ||
		r.ConnectTimeout != 5*time.Second || r.DrainTimeout != time.Minute || r.StandbyPoll != 2*time.Second ||
		r.Retry != (retry.Backoff{Initial: 200 * time.Millisecond, Max: 20 * time.Second, Multiplier: 1.5}) {
		t.Errorf("wiring.Replication = %+v", r)
	}
	d := wiring.Decoder(got)
	if len(d.Tables) != 2 || d.Tables[0].Name != "app.events" || d.Tables[0].Columns.ID != "event_id" || d.MessagePrefix != "events" || d.MessagesOff || d.HeartbeatPrefix != "hb" || d.DefaultSource != "/default" {
		t.Errorf("wiring.Decoder = %+v", d)
	}
	if c := wiring.Checkpoint(got); c != (checkpoint.Config{MaxEvents: 100, MaxBytes: 1 << 20}) {
		t.Errorf("wiring.Checkpoint = %+v", c)
	}
	if names := got.TableNames(); !reflect.DeepEqual(names, []string{"app.events", "public.outbox"}) {
		t.Errorf("TableNames() = %v", names)
	}
	if f := wiring.File(got.Sinks[0]); f != (file.Config{Path: "/var/lib/outbox-cdc/events.jsonl", Sync: true, Mode: 0o640}) {
		t.Errorf("wiring.File(Sinks[0]) = %+v", f)
	}
	if f := wiring.File(got.Sinks[1]); f != (file.Config{Path: "-"}) {
		t.Errorf("stdout wiring.File = %+v, want path -", f)
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	got, err := config.Load(writeConfig(t, "postgres: {url: 'host=x'}\nsinks: [{name: s, type: stdout}]\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Postgres.Slot != "outbox_cdc" || got.Postgres.Publication != "outbox_cdc" || got.HTTP.Addr != "127.0.0.1:9187" ||
		got.Log.Level != "info" || got.Log.Format != "text" {
		t.Errorf("defaults = %+v", got)
	}
	if names := got.TableNames(); !reflect.DeepEqual(names, []string{decoder.DefaultTable}) {
		t.Errorf("TableNames() = %v, want the default table", names)
	}
}

func TestLoadUnknownKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		yaml string
		key  string
	}{
		{"top level", "postgres: {url: x}\nsinkz: []\n", "sinkz"},
		{"nested", "postgres:\n  url: x\n  ulr: y\n", "ulr"},
		{"in a list item", "postgres: {url: x}\nsinks:\n  - name: a\n    type: file\n    paht: /tmp/x\n", "paht"},
		{"in a table's columns", "postgres: {url: x}\noutbox:\n  tables:\n    - columns: {identifier: x}\n", "identifier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := writeConfig(t, tc.yaml)
			_, err := config.Load(p, nil, nil)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			msg := err.Error()
			if !strings.Contains(msg, "unknown config key "+tc.key) || !strings.Contains(msg, p) || !strings.Contains(msg, "line ") {
				t.Errorf("error %q does not name the key %q, the file and the line", msg, tc.key)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	t.Parallel()
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml"), nil, nil); err == nil || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := config.Load(writeConfig(t, "postgres: [\n"), nil, nil); err == nil {
		t.Error("broken YAML loaded")
	}
	// An empty file is no error by itself: the env can supply everything.
	env := []string{"OUTBOX_CDC_POSTGRES_URL=host=x", "OUTBOX_CDC_SINKS_0_NAME=s", "OUTBOX_CDC_SINKS_0_TYPE=stdout"}
	if _, err := config.Load(writeConfig(t, ""), env, nil); err != nil {
		t.Errorf("empty file with env: %v", err)
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	env := []string{
		"HOME=/root", // not ours: ignored
		"OUTBOX_CDC_POSTGRES_URL=postgres://other@db:5432/app",
		"OUTBOX_CDC_POSTGRES_SLOT=env_slot",
		"OUTBOX_CDC_POSTGRES_STATUS_INTERVAL=2s",
		"OUTBOX_CDC_POSTGRES_RETRY_MAX=1m30s",
		"OUTBOX_CDC_POSTGRES_RETRY_MULTIPLIER=3",
		"OUTBOX_CDC_OUTBOX_TABLES_0_COLUMNS_AGGREGATE_ID=agg",
		"OUTBOX_CDC_OUTBOX_DEFAULT_SOURCE=/env",
		"OUTBOX_CDC_WINDOW_MAX_BYTES=5000",
		"OUTBOX_CDC_WINDOW_MAX_EVENTS=7",
		"OUTBOX_CDC_SINKS_0_PATH=/tmp/from-env.jsonl",
		"OUTBOX_CDC_SINKS_0_SYNC=false",
		"OUTBOX_CDC_SINKS_0_ROUTE_TYPES= a.* , b,,c ",
		"OUTBOX_CDC_SINKS_2_NAME=extra", // a new sink entry past the YAML's two
		"OUTBOX_CDC_SINKS_2_TYPE=file",
		"OUTBOX_CDC_SINKS_2_PATH=/tmp/extra.jsonl",
		"OUTBOX_CDC_SINKS_2_SYNC=1",
		"OUTBOX_CDC_SINKS_2_MAX_BATCH=64",
		"OUTBOX_CDC_HEARTBEAT_INTERVAL=1m",
		"OUTBOX_CDC_HEARTBEAT_DISABLED=FALSE",
		"OUTBOX_CDC_LOG_LEVEL=warn",
	}
	var warn warnings
	got, err := config.Load(writeConfig(t, everyKey), env, warn.add)
	if err != nil {
		t.Fatal(err)
	}
	fields := everyKeyFields(got)
	override := map[string]any{
		"postgres.url":             "postgres://other@db:5432/app",
		"postgres.slot":            "env_slot",
		"postgres.status_interval": 2 * time.Second,
		"postgres.retry":           config.Backoff{Initial: 200 * time.Millisecond, Max: 90 * time.Second, Multiplier: 3},
		"outbox.default_source":    "/env",
		"window.max_events":        7,
		"window.max_bytes":         int64(5000),
		"len(sinks)":               3,
		"sinks[0].path":            "/tmp/from-env.jsonl",
		"sinks[0].sync":            false,
		"sinks[0].route":           config.Route{Types: []string{"a.*", "b", "c"}, AggregateTypes: []string{"order", "invoice"}},
		"heartbeat.interval":       time.Minute,
		"heartbeat.disabled":       false,
		"log.level":                config.LogLevel("warn"),
	}
	for i := range fields {
		if v, ok := override[fields[i].key]; ok {
			fields[i].want = v
		}
		if fields[i].key == "outbox.tables" {
			tables := slices.Clone(fields[i].want.([]config.Table))
			tables[0].Columns.AggregateID = "agg"
			tables[1].DefaultSource = "/env" // from outbox.default_source
			fields[i].want = tables
		}
	}
	checkFields(t, fields)
	if len(got.Sinks) == 3 {
		want := config.Sink{Name: "extra", Type: config.SinkFile, Path: "/tmp/extra.jsonl", Sync: true, MaxBatch: 64, Policy: sink.PolicyBlock, Retry: defaultSinkRetry}
		if !reflect.DeepEqual(got.Sinks[2], want) {
			t.Errorf("sinks[2] = %+v, want %+v", got.Sinks[2], want)
		}
	}
	if len(warn) != 0 {
		t.Errorf("warnings for known variables: %v", warn)
	}
}

func TestEnvAloneCreatesSink(t *testing.T) {
	t.Parallel()
	env := []string{
		"OUTBOX_CDC_POSTGRES_URL=host=db",
		"OUTBOX_CDC_SINKS_0_NAME=events",
		"OUTBOX_CDC_SINKS_0_TYPE=file",
		"OUTBOX_CDC_SINKS_0_PATH=/tmp/events.jsonl",
		"OUTBOX_CDC_SINKS_0_ROUTE_AGGREGATE_TYPES=order",
	}
	got, err := config.Load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Sink{{Name: "events", Type: config.SinkFile, Path: "/tmp/events.jsonl", Route: config.Route{AggregateTypes: []string{"order"}},
		MaxBatch: sink.DefaultMaxBatch, Policy: sink.PolicyBlock, Retry: defaultSinkRetry}}
	if got.Postgres.URL != "host=db" || !reflect.DeepEqual(got.Sinks, want) {
		t.Errorf("Load = %+v, want URL host=db and sinks %+v", got, want)
	}
}

func TestEnvBadValues(t *testing.T) {
	t.Parallel()
	for _, kv := range []string{
		"OUTBOX_CDC_POSTGRES_STATUS_INTERVAL=fast",
		"OUTBOX_CDC_POSTGRES_STATUS_INTERVAL=500", // a duration needs a unit
		"OUTBOX_CDC_SINKS_0_SYNC=maybe",
		"OUTBOX_CDC_WINDOW_MAX_EVENTS=lots",
		"OUTBOX_CDC_POSTGRES_RETRY_MULTIPLIER=double",
	} {
		name, _, _ := strings.Cut(kv, "=")
		env := []string{"OUTBOX_CDC_POSTGRES_URL=host=db", "OUTBOX_CDC_SINKS_0_NAME=s", "OUTBOX_CDC_SINKS_0_TYPE=stdout", kv}
		_, err := config.Load("", env, nil)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: Load = %v, want an error naming %s", kv, err, name)
		}
	}
}

// TestEnvIgnoresTestHarness: the test harness's variables, which
// scripts/install-test-deps.sh exports for every test (and so for every
// outbox-cdc a test starts), are no config overrides and no warnings.
func TestEnvIgnoresTestHarness(t *testing.T) {
	t.Parallel()
	env := []string{"OUTBOX_CDC_POSTGRES_URL=host=db", "OUTBOX_CDC_SINKS_0_NAME=s", "OUTBOX_CDC_SINKS_0_TYPE=stdout"}
	for _, name := range []string{harness.EnvCache, harness.EnvPGBin, harness.EnvRedisServer, harness.EnvNATSServer,
		harness.EnvKafkaLibs, harness.EnvJava, harness.EnvRequireServers, harness.EnvKeepTemp} {
		env = append(env, name+"=/x")
	}
	var warn warnings
	if _, err := config.Load("", env, warn.add); err != nil {
		t.Fatal(err)
	}
	if len(warn) > 0 {
		t.Errorf("warnings = %q, want none", warn)
	}
}

func TestEnvUnknownVariablesWarn(t *testing.T) {
	t.Parallel()
	env := []string{
		"OUTBOX_CDC_POSTGRES_URL=host=db",
		"OUTBOX_CDC_SINKS_0_NAME=s",
		"OUTBOX_CDC_SINKS_0_TYPE=stdout",
		"OUTBOX_CDC_POSTGRES_URLL=typo",
		"OUTBOX_CDC_POSTGRES_PASSWORD=s3cret",
		"OUTBOX_CDC_NOPE=1",
		"OUTBOX_CDC_SINKS_0_PAHT=1",
		"OUTBOX_CDCX_POSTGRES_URL=not ours",
		"PATH=/usr/bin",
	}
	var warn warnings
	if _, err := config.Load("", env, warn.add); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"OUTBOX_CDC_NOPE",
		"OUTBOX_CDC_POSTGRES_PASSWORD",
		"OUTBOX_CDC_POSTGRES_URLL",
		"OUTBOX_CDC_SINKS_0_PAHT",
	}
	if len(warn) != len(want) {
		t.Fatalf("warnings = %q, want one each for %v", warn, want)
	}
	for i, name := range want {
		if !strings.Contains(warn[i], name) {
			t.Errorf("warning %d = %q, want it to name %s (sorted)", i, warn[i], name)
		}
	}
	for _, w := range warn {
		if strings.Contains(w, "s3cret") {
			t.Errorf("warning %q shows a value", w)
		}
	}
	// A nil warn func is fine.
	if _, err := config.Load("", env, nil); err != nil {
		t.Errorf("nil warn: %v", err)
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	t.Parallel()
	const base = "postgres: {url: 'host=db'}\n"
	for _, tc := range []struct {
		name string
		yaml string
		want []string // parts of the message
	}{
		{"missing postgres.url", "sinks: [{name: s, type: stdout}]\n", []string{"postgres.url", "OUTBOX_CDC_POSTGRES_URL"}},
		{"no sinks", base, []string{"sinks", "at least one"}},
		{"sink without name", base + "sinks: [{type: stdout}]\n", []string{"sinks[0].name"}},
		{"duplicate sink names", base + "sinks: [{name: a, type: stdout}, {name: a, type: file, path: /x}]\n", []string{"sinks[1].name", `"a"`, "twice"}},
		{"bad route glob", base + "sinks: [{name: a, type: stdout, route: {types: ['order.[']}}]\n", []string{"sinks[0].route", "order.["}},
		{"bad aggregate route glob", base + "sinks: [{name: a, type: stdout}, {name: b, type: stdout, route: {aggregate_types: ['[']}}]\n", []string{"sinks[1].route"}},
		{"unknown sink type", base + "sinks: [{name: a, type: carrier-pigeon}]\n", []string{"sinks[0].type", `"carrier-pigeon"`}},
		{"file without path", base + "sinks: [{name: a, type: file}]\n", []string{"sinks[0]", "path is required"}},
		{"file sync to stdout", base + "sinks: [{name: a, type: file, path: '-', sync: true}]\n", []string{"sinks[0]", "sync"}},
		{"bad slot name", "postgres: {url: x, slot: Outbox-Slot}\nsinks: [{name: s, type: stdout}]\n", []string{"postgres", "slot", "Outbox-Slot"}},
		{"slot name too long", "postgres: {url: x, slot: " + strings.Repeat("s", 64) + "}\nsinks: [{name: s, type: stdout}]\n", []string{"slot"}},
		{"bad publication name", "postgres: {url: x, publication: 'pub lication'}\nsinks: [{name: s, type: stdout}]\n", []string{"publication"}},
		{"log level", base + "sinks: [{name: s, type: stdout}]\nlog: {level: verbose}\n", []string{"log.level", "verbose"}},
		{"log format", base + "sinks: [{name: s, type: stdout}]\nlog: {format: xml}\n", []string{"log.format", "xml"}},
		{"outbox table twice", base + "sinks: [{name: s, type: stdout}]\noutbox: {tables: [{name: outbox}, {name: public.outbox}]}\n", []string{"outbox", "twice"}},
		{"prefixes equal", base + "sinks: [{name: s, type: stdout}]\noutbox: {messages: {prefix: x}, heartbeat_prefix: x}\n", []string{"outbox", "messages.prefix"}},
		{"old message_prefix", base + "sinks: [{name: s, type: stdout}]\noutbox: {message_prefix: events}\n", []string{"outbox.message_prefix", "outbox.messages", "enabled: true", `prefix: "events"`, "docs/security.md"}},
		{"file mode not octal", base + "sinks: [{name: a, type: file, path: /x, mode: rw-------}]\n", []string{"sinks[0].mode", `"rw-------"`, "octal"}},
		{"file mode too wide", base + "sinks: [{name: a, type: file, path: /x, mode: '01777'}]\n", []string{"sinks[0]", "mode"}},
		{"mode on a broker sink", base + "sinks: [{name: a, type: stdout, mode: '0600'}]\n", []string{"sinks[0]", "mode apply only to file sinks"}},
		{"empty writer role", "postgres: {url: 'host=db', roles: {writers: [app, '']}}\nsinks: [{name: s, type: stdout}]\n", []string{"postgres.roles.writers[1]", "empty"}},
		{"unparseable url", "postgres: {url: 'postgres://app:s3cret@Kvw2:s3cret@db/app'}\nsinks: [{name: s, type: stdout}]\n", []string{"postgres.url", "cannot parse", "app:xxxxx@db/app", "percent-encode"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(writeConfig(t, tc.yaml), nil, nil)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, part := range tc.want {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not contain %q", err, part)
				}
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Errorf("error %q is not prefixed config:", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestValidateStdoutRejectsFileKeys(t *testing.T) {
	t.Parallel()
	for _, yaml := range []string{
		"postgres: {url: x}\nsinks: [{name: a, type: stdout, path: /var/log/events.jsonl}]\n",
		"postgres: {url: x}\nsinks: [{name: a, type: stdout, sync: true}]\n",
	} {
		if _, err := config.Load(writeConfig(t, yaml), nil, nil); err == nil || !strings.Contains(err.Error(), "sinks[0]") {
			t.Errorf("%s: Load = %v, want an error on sinks[0]", yaml, err)
		}
	}
}
