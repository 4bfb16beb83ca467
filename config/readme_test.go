package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outbox-cdc/outbox-cdc/config"
)

// The README's full sink example is a valid configuration.
func TestReadmeSinkExampleLoads(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "### Sinks")
	if !ok {
		t.Fatal("README has no Sinks section")
	}
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	block, _, _ := strings.Cut(rest, "```")
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("postgres: {url: postgres://x@127.0.0.1:1/x}\n"+block), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil, nil)
	if err != nil {
		t.Fatalf("README sink example: %v", err)
	}
	types := map[string]bool{}
	for _, s := range cfg.Sinks {
		types[string(s.Type)] = true
	}
	for _, want := range []string{"kafka", "nats", "redis", "file"} {
		if !types[want] {
			t.Errorf("README example has no %s sink", want)
		}
	}
}

// The README's configuration reference is a valid configuration.
func TestReadmeConfigReferenceLoads(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "### Configuration")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	block, _, _ := strings.Cut(rest, "```")
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(block), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path, nil, nil); err != nil {
		t.Fatalf("README configuration reference: %v", err)
	}
}

// The configuration page's reference is a valid configuration too.
func TestDocsConfigReferenceLoads(t *testing.T) {
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```yaml\n")
	if !ok {
		t.Fatal("docs/configuration.md has no YAML block")
	}
	block, _, _ := strings.Cut(rest, "```")
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(block), 0o644); err != nil {
		t.Fatal(err)
	}
	var warn warnings
	if _, err := config.Load(path, nil, warn.add); err != nil {
		t.Fatalf("docs/configuration.md reference: %v", err)
	}
	if len(warn) != 0 {
		t.Errorf("docs/configuration.md reference uses deprecated keys: %q", warn)
	}
}
