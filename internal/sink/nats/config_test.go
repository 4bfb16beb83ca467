package nats

import (
	"strings"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/sink"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := Config{Stream: StreamConfig{Name: "OUTBOX"}}
	for _, tc := range []struct {
		name string
		cfg  func(c *Config)
		want string // substring of the error; "" for valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"create with defaults", func(c *Config) { c.Stream.Create = true }, ""},
		{"full", func(c *Config) {
			*c = Config{URL: "nats://a:1, tls://b:2", Subject: "x.{{.Type}}", ContentMode: "structured",
				Stream: StreamConfig{Name: "S", Create: true, Subjects: []string{"x.>"}, DuplicateWindow: time.Minute,
					Replicas: 3, MaxAge: time.Hour, Storage: "memory"},
				MaxInFlight: 10, AckTimeout: time.Second, User: "u", Password: "p",
				TLS: TLSConfig{CertFile: "c", KeyFile: "k"}}
		}, ""},
		{"no stream", func(c *Config) { c.Stream.Name = "" }, "stream.name is required"},
		{"bad stream name", func(c *Config) { c.Stream.Name = "a.b" }, "stream.name"},
		{"bad url scheme", func(c *Config) { c.URL = "http://x:1" }, "scheme"},
		{"no host", func(c *Config) { c.URL = "nats://:4222" }, "no host"},
		{"bad template", func(c *Config) { c.Subject = "x.{{.Nope}}" }, "subject"},
		{"static wildcard subject", func(c *Config) { c.Subject = "x.*" }, "wildcards"},
		{"bad mode", func(c *Config) { c.ContentMode = "batch" }, "content_mode"},
		{"negative in flight", func(c *Config) { c.MaxInFlight = -1 }, "max_in_flight"},
		{"negative timeout", func(c *Config) { c.AckTimeout = -time.Second }, "ack_timeout"},
		{"replicas", func(c *Config) { c.Stream.Create, c.Stream.Replicas = true, 7 }, "replicas"},
		{"storage", func(c *Config) { c.Stream.Create, c.Stream.Storage = true, "disk" }, "storage"},
		{"window over age", func(c *Config) {
			c.Stream.Create, c.Stream.DuplicateWindow, c.Stream.MaxAge = true, time.Hour, time.Minute
		}, "duplicate_window"},
		{"bad stream subject", func(c *Config) { c.Stream.Create, c.Stream.Subjects = true, []string{"a.>.b"} }, "last token"},
		{"no derivable subjects", func(c *Config) { c.Stream.Create, c.Subject = true, "{{.AggregateType}}.x" }, "stream.subjects"},
		{"create-only fields without create", func(c *Config) { c.Stream.Subjects = []string{"x.>"} }, "only used with stream.create"},
		{"two auth methods", func(c *Config) { c.User, c.Token = "u", "t" }, "mutually exclusive"},
		{"password without user", func(c *Config) { c.Password = "p" }, "password needs user"},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "c" }, "tls.cert_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.cfg(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestConfigValidateHidesSecrets(t *testing.T) {
	t.Parallel()
	c := Config{URL: "http://alice:s3cret@host:1", Stream: StreamConfig{Name: "S"}}
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Validate() = %v, want an error without the password", err)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":         "nats://127.0.0.1:4222",
		"nats://alice:s3cret@h:1":       "nats://redacted@h:1",
		"nats://tok@h:1, tls://u:p@x:2": "nats://redacted@h:1,tls://redacted@x:2",
		"h:1":                           "h:1",
		"u:p@h:1":                       "redacted@h:1",
		"nats://h:1/path@x":             "nats://h:1/path@x",
		"nats://we%40ird:pa@ss@h:1":     "nats://redacted@h:1",
		"wss://user:pw@example.com:443/ws?token=none": "wss://redacted@example.com:443/ws?token=none",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSubjects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		filter, subj string
		want         bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{">", "a", true},
		{"*.b", "a.b", true},
		{"a.b.c", "a.b", false},
	} {
		if got := matchSubject(tc.filter, tc.subj); got != tc.want {
			t.Errorf("matchSubject(%q, %q) = %v", tc.filter, tc.subj, got)
		}
	}
	for s, bad := range map[string]bool{"a.b": false, "a": false, "": true, "a..b": true, ".a": true, "a.": true,
		"a.*": true, "a.>": true, "a b": true, "a\tb": true, "é.x": false} {
		if err := checkSubject(s); (err != nil) != bad {
			t.Errorf("checkSubject(%q) = %v", s, err)
		}
	}
	for _, tc := range []struct {
		tmpl    string
		filters []string
		want    bool
	}{
		{"outbox.{{.AggregateType}}", []string{"outbox.>"}, true},
		{"outbox.{{.AggregateType}}", []string{"outbox.*"}, true},
		{"outbox.{{.AggregateType}}", []string{"outbox.orders"}, true}, // partly: checked per subject later
		{"outbox.{{.AggregateType}}", []string{"outbox"}, false},
		{"outbox.{{.AggregateType}}", []string{"other.>"}, false},
		{"a.b.{{.Type}}", []string{"a.*.x"}, true},
		{"a.b.{{.Type}}", []string{"a.c.>"}, false},
		{"{{.Type}}", []string{"x"}, true},
		{"static.subject", []string{"static.*"}, true},
		{"static.subject", []string{"static"}, false},
	} {
		tm, err := sink.ParseTemplate(tc.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if got := templateCovered(tm, tc.filters); got != tc.want {
			t.Errorf("templateCovered(%q, %q) = %v", tc.tmpl, tc.filters, got)
		}
	}
	for tmpl, want := range map[string]string{
		"outbox.{{.AggregateType}}":   "outbox.>",
		"a.b.{{.Type}}.c":             "a.b.>",
		"a.b{{.Type}}":                "a.>",
		"static.one":                  "static.one",
		"{{.AggregateType}}.x":        "",
		"x{{.AggregateType}}.y":       "",
		"outbox.{{.AggregateType}}.x": "outbox.>",
	} {
		tm, _ := sink.ParseTemplate(tmpl)
		got, err := defaultStreamSubjects(tm)
		if want == "" {
			if err == nil {
				t.Errorf("defaultStreamSubjects(%q) = %q, want an error", tmpl, got)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("defaultStreamSubjects(%q) = %q, %v, want %q", tmpl, got, err, want)
		}
	}
}
