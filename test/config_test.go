package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 9, "Settings that are silently wrong": `run` refuses, before it
// connects anywhere, a configuration whose durations and sizes are negative,
// whose backoff shrinks, whose types are wrong, whose http.addr cannot be
// listened on, whose file sinks write one file twice or carry a broker
// section, and an environment override past the end of a list; it names
// every key (or variable) in one go.
func TestSilentlyWrongSettingsAreNamed(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "events.jsonl")
	cfg := filepath.Join(dir, "bad.yaml")
	body := fmt.Sprintf(`postgres:
  url: postgres://postgres:s3cret-never-shown@127.0.0.1:1/x?connect_timeout=2
  status_interval: -5s
  drain_timeout: -1s
heartbeat: {interval: -3s}
window: {max_events: -1, max_bytes: -5}
http: {sink_timeout: -1s, addr: nonsense}
sinks:
  - name: audit
    type: file
    path: %q
    retry: {initial: -1s, multiplier: 0.1}
  - name: copy
    type: file
    path: %q
    kafka: {brokers: ["127.0.0.1:9092"]}
  - name: typed
    type: stdout
    max_batch: lots
`, out, out)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, cmd := range []string{"run", "setup"} {
		c := execCommand(ctx, binary, cmd, "--config", cfg)
		c.Env = append(os.Environ(), "OUTBOX_CDC_SINKS_5_PATH=/tmp/x.jsonl")
		b, err := c.CombinedOutput()
		got := string(b)
		if err == nil {
			t.Fatalf("%s: exit 0 with a wrong configuration:\n%s", cmd, got)
		}
		for _, want := range []string{
			"config: postgres.status_interval: must be positive",
			"config: postgres.drain_timeout: must be positive",
			"config: heartbeat.interval: must be positive",
			"config: window.max_events: must be positive",
			"config: window.max_bytes: must be positive",
			"config: http.sink_timeout: must be positive",
			"config: sinks[0].retry.initial: must be positive",
			"config: sinks[0].retry.multiplier: must be at least 1",
			"config: http.addr",
			"config: sinks[1].path",
			"config: sinks[1].kafka",
			"sinks[2].max_batch",
			"OUTBOX_CDC_SINKS_5_PATH",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("%s: output does not say %q:\n%s", cmd, want, got)
			}
		}
		for _, not := range []string{"s3cret-never-shown", "cannot connect"} {
			if strings.Contains(got, not) {
				t.Errorf("%s: output says %q:\n%s", cmd, not, got)
			}
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the file sink's output was created although the configuration is wrong")
	}
}
