package nats

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/retry"
	"github.com/outbox-cdc/outbox-cdc/internal/sink/tlsconf"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// Defaults for Config's zero fields.
const (
	DefaultURL             = "nats://127.0.0.1:4222"
	DefaultSubject         = "outbox.{{.AggregateType}}"
	DefaultMaxInFlight     = 4096
	DefaultAckTimeout      = 5 * time.Second
	DefaultConnectTimeout  = 10 * time.Second
	DefaultReconnectWait   = 2 * time.Second
	DefaultDuplicateWindow = 2 * time.Minute
)

// Content modes of the CloudEvents NATS protocol binding.
const (
	ModeBinary     = "binary"
	ModeStructured = "structured"
)

// Config configures a NATS JetStream sink. It is the value of the `nats:` key
// of a sink entry in the configuration file:
//
//	sinks:
//	  - name: events
//	    type: nats
//	    nats:
//	      url: nats://127.0.0.1:4222
//	      subject: outbox.{{.AggregateType}}
//	      stream: {name: OUTBOX, create: true}
type Config struct {
	// URL is the server to connect to, or several separated by commas (the
	// client picks one and fails over to the others). Schemes nats://,
	// tls://, ws:// and wss://. User info in the URL (user:password@ or
	// token@) is accepted and never logged. Default DefaultURL.
	URL string

	// Subject is the template of the subject every event is published to,
	// over the fields of event.Event (see sink.ParseTemplate). Every subject
	// it yields must be one of Stream's subjects. Default DefaultSubject,
	// "outbox.{{.AggregateType}}".
	Subject string

	// Mode is the CloudEvents content mode: "structured" (the CloudEvents
	// JSON format as the payload, content-type application/cloudevents+json)
	// or "binary" (attributes in ce- headers, data as the payload). Default
	// "structured": the mode the released NATS protocol binding (1.0.x)
	// defines and every CloudEvents SDK reads without configuration; binary
	// mode follows the binding's working draft, which the CloudEvents Go
	// SDK's NATS protocols read since they added it (docs/sinks/nats.md).
	ContentMode string

	// Stream is the JetStream stream the subjects belong to. Its name is
	// required.
	Stream StreamConfig

	// RelaxedOrder turns off the Nats-Expected-Last-Msg-Id chain. By
	// default (false) every message but the first after a (re)start names
	// the id of the message before it, so the stream can never store an
	// event after a later one even when a leader election or a restart
	// makes a publish fail while the next succeeds; that needs the sink to
	// be the only publisher to the stream. It also keeps a copy resent after
	// the duplicate window from being stored twice. Set it when other
	// clients publish to the same stream: order is then kept for
	// acknowledgements, and in the stream except in that failure window.
	// Default false.
	RelaxedOrder bool

	// MaxInFlight caps the events published and not yet acknowledged by the
	// server; Publish blocks while it is reached. Default DefaultMaxInFlight
	// (4096).
	MaxInFlight int

	// AckTimeout is how long a publish waits for its acknowledgement before
	// it counts as failed and is sent again (the server drops the copy if
	// the first one was stored). Default DefaultAckTimeout (5s).
	AckTimeout time.Duration

	// ConnectTimeout bounds connecting at startup (per server URL) and the
	// stream checks made then. Default DefaultConnectTimeout (10s).
	ConnectTimeout time.Duration

	// ReconnectWait is the pause between attempts to reconnect to a server
	// after the connection was lost. The client reconnects forever. Default
	// DefaultReconnectWait (2s).
	ReconnectWait time.Duration

	// Retry is the backoff between rounds of resending unacknowledged
	// events after a failed publish. A reconnection cuts the wait short.
	// Default retry.Backoff{} (100ms doubling up to 30s).
	Retry retry.Backoff

	// CredentialsFile is a NATS credentials file (user JWT and NKey seed),
	// as made by nsc. Default none.
	CredentialsFile string
	// NKeySeedFile is a file holding a user NKey seed (SU...). Default none.
	NKeySeedFile string
	// User and Password authenticate with a user name and password. Default
	// none.
	User     string
	Password string
	// Token authenticates with a token. Default none.
	Token string

	// TLS configures TLS to the server; it is used when a file is set or a
	// URL has the tls:// or wss:// scheme, or when the server requires it.
	TLS TLSConfig
}

// StreamConfig names the JetStream stream and, with Create, how to create it
// when it is missing. The Create-only fields are ignored for a stream that
// exists; the sink never changes an existing stream.
type StreamConfig struct {
	// Name of the stream. Required.
	Name string
	// Create creates the stream at startup when it does not exist (and again
	// if it is deleted while the sink runs). When false, a missing stream is
	// a startup error. Default false.
	Create bool
	// Subjects of a created stream. Default: the literal tokens of Subject
	// followed by ">" ("outbox.>" for "outbox.{{.AggregateType}}"), or
	// Subject itself when it has no template actions.
	Subjects []string
	// DuplicateWindow of a created stream: how long the server remembers
	// message ids (source + id of each event) to drop resent copies. Default
	// DefaultDuplicateWindow (2m).
	DuplicateWindow time.Duration
	// Replicas of a created stream, 1 to 5. Default 1.
	Replicas int
	// MaxAge of messages in a created stream. Default 0: kept until the
	// stream's other limits remove them.
	MaxAge time.Duration
	// Storage of a created stream: "file" or "memory". Default "file".
	Storage string
}

// TLSConfig is the TLS section shared by every broker sink.
type TLSConfig = tlsconf.Config

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.ContentMode == "" {
		c.ContentMode = ModeStructured
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = DefaultReconnectWait
	}
	if c.Stream.Replicas == 0 {
		c.Stream.Replicas = 1
	}
	if c.Stream.Storage == "" {
		c.Stream.Storage = "file"
	}
	if c.Stream.DuplicateWindow == 0 {
		c.Stream.DuplicateWindow = DefaultDuplicateWindow
		if c.Stream.MaxAge > 0 && c.Stream.MaxAge < c.Stream.DuplicateWindow {
			c.Stream.DuplicateWindow = c.Stream.MaxAge
		}
	}
	return c
}

// Validate checks the configuration without touching the network. Zero
// fields are valid and mean their defaults.
func (c Config) Validate() error {
	raw := c.Stream
	c = c.withDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	for _, u := range splitURLs(c.URL) {
		if err := checkURL(u); err != nil {
			errs = append(errs, err)
		}
	}
	tmpl, err := sink.ParseTemplate(c.Subject)
	if err != nil {
		add("subject: %w", err)
	} else if s, static := tmpl.Static(); static {
		if err := checkSubject(s); err != nil {
			add("subject: %w", err)
		}
	}
	if c.ContentMode != ModeBinary && c.ContentMode != ModeStructured {
		add("content_mode %q: must be %q or %q", c.ContentMode, ModeBinary, ModeStructured)
	}
	if c.MaxInFlight < 0 || c.MaxInFlight > 1<<20 {
		add("max_in_flight %d: must be between 1 and %d", c.MaxInFlight, 1<<20)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ack_timeout", c.AckTimeout}, {"connect_timeout", c.ConnectTimeout}, {"reconnect_wait", c.ReconnectWait}} {
		if d.v < 0 {
			add("%s %v: must not be negative", d.name, d.v)
		}
	}

	st := c.Stream
	switch {
	case st.Name == "":
		add("stream.name is required: name the JetStream stream the subjects belong to")
	case strings.ContainsAny(st.Name, " \t\r\n.*>/\\"):
		add("stream.name %q: must not contain spaces, '.', '*', '>', '/' or '\\'", st.Name)
	}
	if st.Create {
		if st.Replicas < 1 || st.Replicas > 5 {
			add("stream.replicas %d: must be between 1 and 5", st.Replicas)
		}
		if st.Storage != "file" && st.Storage != "memory" {
			add("stream.storage %q: must be \"file\" or \"memory\"", st.Storage)
		}
		if st.MaxAge < 0 {
			add("stream.max_age %v: must not be negative", st.MaxAge)
		}
		if st.DuplicateWindow < 100*time.Millisecond {
			add("stream.duplicate_window %v: must be at least 100ms", st.DuplicateWindow)
		}
		if st.MaxAge > 0 && st.DuplicateWindow > st.MaxAge {
			add("stream.duplicate_window %v: must not exceed stream.max_age %v", st.DuplicateWindow, st.MaxAge)
		}
		for _, s := range st.Subjects {
			if err := checkFilter(s); err != nil {
				add("stream.subjects: %w", err)
			}
		}
		if len(st.Subjects) == 0 && tmpl != nil {
			if _, err := defaultStreamSubjects(tmpl); err != nil {
				add("stream.subjects: %w", err)
			}
		}
	} else if len(raw.Subjects) > 0 || raw.MaxAge != 0 || raw.Replicas != 0 || raw.Storage != "" || raw.DuplicateWindow != 0 {
		add("stream.subjects, duplicate_window, replicas, max_age and storage are only used with stream.create: true")
	}

	n := 0
	for _, set := range []bool{c.CredentialsFile != "", c.NKeySeedFile != "", c.User != "", c.Token != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		add("credentials_file, nkey_seed_file, user and token are mutually exclusive")
	}
	if c.Password != "" && c.User == "" {
		add("password needs user")
	}
	if err := c.TLS.Validate(); err != nil {
		add("%s", err)
	}
	return errors.Join(errs...)
}

func splitURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's error quotes the input, which may hold a password.
		return fmt.Errorf("url %s: not a valid URL", redactURL(s))
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("url %s: scheme must be nats, tls, ws or wss", redactURL(s))
	}
	if u.Hostname() == "" {
		return fmt.Errorf("url %s: no host", redactURL(s))
	}
	return nil
}

// redactURL returns the comma-separated URLs in s with any user info replaced
// by "redacted", so they can go into logs and errors.
func redactURL(s string) string {
	parts := splitURLs(s)
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(p, "://")
		if !ok {
			rest, scheme = p, ""
		}
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			if slash := strings.IndexByte(rest, '/'); slash < 0 || at < slash {
				rest = "redacted@" + rest[at+1:]
			}
		}
		if ok {
			parts[i] = scheme + "://" + rest
		} else {
			parts[i] = rest
		}
	}
	return strings.Join(parts, ",")
}
