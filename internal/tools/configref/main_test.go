package main

import (
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/internal/golden"
)

// TestReferenceUpToDate regenerates the configuration reference and
// compares it with the page checked in: a key added, renamed or
// re-documented in package config without `go generate ./config/` fails
// here.
func TestReferenceUpToDate(t *testing.T) {
	got, err := Generate("../../../config")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "../../../docs/reference/configuration.md", got, "go generate ./config/ (or make docs-config)")
}

// TestReferenceCoversEveryKey checks the generator against the schema: a
// few keys from each part of the configuration, with the defaults config
// applies and the ones the sink packages apply.
func TestReferenceCoversEveryKey(t *testing.T) {
	got, err := Generate("../../../config")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `postgres.url` | string | required | URL is the connection string",
		"Environment: `OUTBOX_CDC_POSTGRES_URL` |",
		"| `postgres.status_interval` | duration | `500ms` |",
		"| `window.max_events` | integer | `2048` |",
		"| `sinks[].kafka.brokers` | list of strings | required |",
		"Environment: `OUTBOX_CDC_SINKS_<N>_KAFKA_BROKERS` |",
		"| `sinks` | list | none |",
		"| `sinks[].policy` | one of `block`, `dead-letter` | `block` |",
		"| `sinks[].redis.dedup` | one of `auto`, `entryid`, `guard`, `idmp`, `none` | *auto* |",
		"| `log.format` | one of `text`, `json` | `text` |",
		"(Formerly `reconnect`, still read with a warning.)",
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("the reference has no line with %q", want)
		}
	}
}
