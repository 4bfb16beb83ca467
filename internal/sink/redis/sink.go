package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/delivery"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

var _ sink.Sink = (*Sink)(nil)

// Sink adds events to Redis streams. It is the Redis adapter of the delivery
// engine (internal/delivery): it encodes events into XADD arguments, sends
// them one round trip at a time, and maps Redis replies to permanent or
// transient failures; the engine owns the in-flight window, the order of
// acknowledgements, the sticky failure and the resends. New starts the
// engine's goroutine; Close stops it and must be called. Publish and Flush
// are called from one goroutine; Close may be called from any goroutine,
// more than once.
type Sink struct {
	opts   sink.Options
	cfg    Config
	client *goredis.Client
	enc    encoder
	dedup  string // resolved: guard, idmp or none
	pid    string // IDMP producer id
	ttl    string // guard TTL in ms
	maxlen string // MAXLEN threshold, "0" for none

	eng      *delivery.Engine[record]
	closeErr error

	// Used by Send only (the engine goroutine).
	guardUnreadable bool // the last guard value read failed (logged once)
	args            []any
	cmds            []*goredis.StringCmd
	pipe            goredis.Pipeliner // MULTI/EXEC
	round           []*record
}

// New validates cfg, connects to Redis, checks what can be checked before the
// first event (credentials, the server version, the script, a static
// stream's key type) and starts the sender. It fails after about
// cfg.ConnectTimeout when the server cannot be reached. Call Close to release
// the connections.
func New(ctx context.Context, cfg Config, opts sink.Options) (*Sink, error) {
	opts = opts.WithDefaults()
	name := opts.Name
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sink %s: %w", name, err)
	}
	stream, err := sink.ParseDestination(cfg.Stream, streamRules)
	if err != nil {
		return nil, fmt.Errorf("sink %s: stream: %w", name, err)
	}
	tlsConfig, err := cfg.TLS.Build(hostOf(cfg.Address))
	if err != nil {
		return nil, fmt.Errorf("sink %s: tls: %w", name, err)
	}
	client := goredis.NewClient(&goredis.Options{
		Addr:         cfg.Address,
		Username:     cfg.Username,
		Password:     cfg.Password,
		DB:           cfg.DB,
		TLSConfig:    tlsConfig,
		DialTimeout:  cfg.ConnectTimeout,
		ReadTimeout:  cfg.Timeout,
		WriteTimeout: cfg.Timeout,
		// The sender retries with its own backoff and decides what to
		// resend; go-redis must not retry dials or commands by itself.
		DialerRetries: 1,
		MaxRetries:    -1,
		// Deadlines of the startup checks' context bound their reads too.
		ContextTimeoutEnabled: true,
		PoolSize:              4,
		DisableIdentity:       true, // no CLIENT SETINFO: fewer ACL permissions needed
	})
	s := &Sink{
		opts:   opts,
		cfg:    cfg,
		client: client,
		enc:    encoder{stream: stream, structured: cfg.ContentMode == ContentStructured},
		ttl:    strconv.FormatInt(cfg.GuardTTL.Milliseconds(), 10),
		maxlen: strconv.FormatInt(cfg.MaxLen, 10),
		pid:    cfg.ProducerID,
	}
	if s.pid == "" {
		s.pid = "outbox-cdc/" + name
	}
	if err := s.check(ctx, stream); err != nil {
		client.Close()
		return nil, err
	}
	s.enc.guard = s.dedup == DedupGuard
	s.enc.idmp = s.dedup == DedupIDMP
	s.enc.entryID = s.dedup == DedupEntryID
	s.pipe = client.TxPipeline()
	s.eng = delivery.New(delivery.Config{
		Name:        name,
		MaxInFlight: cfg.MaxInFlight,
		MaxBatch:    cfg.BatchSize,
		Ordered:     true,
		Retry:       cfg.Retry,
		Ack:         opts.Ack,
		Logger:      opts.Logger.With("address", cfg.Address),
		Observer:    opts.Observer,
	}, adapter{s})
	return s, nil
}

// check runs the startup checks and resolves the dedup mode.
// streamRules: a templated stream name may not be empty nor start or end with
// a separator, which is what an empty field gives.
var streamRules = sink.DestinationRules{Kind: "stream", Separators: ":._-"}

// Templates implements sink.Templated.
func (s *Sink) Templates() []*sink.Template {
	if t, ok := s.enc.stream.(*sink.Template); ok {
		return []*sink.Template{t}
	}
	return nil
}

func (s *Sink) check(ctx context.Context, stream *sink.Template) error {
	name, addr := s.opts.Name, s.cfg.Address
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	if err := s.client.Ping(ctx).Err(); err != nil {
		return startupError(name, addr, s.cfg.Username, err)
	}
	version := "unknown"
	info, err := s.client.Info(ctx, "server").Result()
	if err == nil {
		version = infoField(info, "redis_version")
	} else if !isNoPerm(err) {
		return startupError(name, addr, s.cfg.Username, err)
	}
	idmp := versionAtLeast(version, 8, 6)
	s.dedup = s.cfg.Dedup
	switch s.cfg.Dedup {
	case DedupIDMP:
		if !idmp {
			return fmt.Errorf("sink %s: redis at %s is version %s; dedup \"idmp\" needs 8.6 or newer: use dedup \"guard\" or \"auto\"", name, addr, version)
		}
	case DedupAuto:
		s.dedup = DedupEntryID
		if idmp {
			keep := s.idmpCapacity(ctx)
			if keep >= int64(s.cfg.MaxInFlight) {
				s.dedup = DedupIDMP
			} else {
				s.opts.Logger.Info("redis sink: server has XADD IDMP but keeps fewer idempotent ids per producer than max_in_flight; using entry ids",
					"sink", name, "stream_idmp_maxsize", keep, "max_in_flight", s.cfg.MaxInFlight)
			}
		}
	}
	if s.dedup == DedupGuard {
		sha, err := s.client.ScriptLoad(ctx, guardScript).Result()
		if err != nil {
			return startupError(name, addr, s.cfg.Username, err)
		}
		if sha != guardScriptSHA {
			return fmt.Errorf("sink %s: redis at %s returned script sha %s, want %s", name, addr, sha, guardScriptSHA)
		}
	}
	if key, static := stream.Static(); static {
		typ, err := s.client.Type(ctx, key).Result()
		if err != nil {
			return startupError(name, addr, s.cfg.Username, err)
		}
		switch {
		case typ == "none" && s.cfg.NoMkStream:
			return fmt.Errorf("sink %s: stream %q does not exist in redis at %s db %d and nomkstream is set: create it (XGROUP CREATE %s <group> $ MKSTREAM) or unset nomkstream", name, key, addr, s.cfg.DB, key)
		case typ != "none" && typ != "stream":
			return fmt.Errorf("sink %s: key %q in redis at %s db %d holds a %s, not a stream: choose another stream name or delete the key", name, key, addr, s.cfg.DB, typ)
		}
	}
	s.opts.Logger.Info("redis sink connected", "sink", name, "address", addr, "db", s.cfg.DB,
		"redis_version", version, "dedup", s.dedup, "content_mode", s.cfg.ContentMode, "stream", s.cfg.Stream)
	return nil
}

// idmpCapacity returns the server's default number of idempotent ids kept per
// producer and stream, or 0 when it cannot be read.
func (s *Sink) idmpCapacity(ctx context.Context) int64 {
	m, err := s.client.ConfigGet(ctx, "stream-idmp-maxsize").Result()
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(m["stream-idmp-maxsize"], 10, 64)
	return n
}

func isNoPerm(err error) bool {
	var re goredis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "NOPERM")
}

// infoField returns the value of key in an INFO reply.
func infoField(info, key string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// versionAtLeast reports whether version "X.Y.Z" is at least major.minor.
func versionAtLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// Dedup returns the dedup mode in use: "entryid", "guard", "idmp" or "none".
func (s *Sink) Dedup() string { return s.dedup }

// Publish takes events in order; each is acknowledged once Redis replied
// that it holds it (or already held it). It blocks while Config.MaxInFlight
// events are unacknowledged. It returns a *sink.PermanentError for an event
// that cannot be encoded (the events before it are taken, it and the ones
// after are not, and the sink stays usable) or that Redis rejected earlier
// (then every later call does), ctx.Err() when ctx is done while blocked,
// and sink.ErrClosed after Close.
func (s *Sink) Publish(ctx context.Context, events []*event.Event) error {
	return s.eng.Publish(ctx, events)
}

// Flush blocks until every event handed to Publish was acknowledged. It
// returns the sticky *sink.PermanentError if Redis rejected an event,
// sink.ErrClosed after Close, or ctx.Err().
func (s *Sink) Flush(ctx context.Context) error { return s.eng.Flush(ctx) }

// Close stops the engine and closes the connections. Events not yet
// acknowledged stay unacknowledged. Close is idempotent and safe for
// concurrent use.
func (s *Sink) Close() error {
	_ = s.eng.Close(context.Background(), func() { s.closeErr = s.client.Close() })
	return s.closeErr
}

// SetClientLogger routes the log lines of the go-redis client library (a
// process-wide logger, mostly failed dials, one per attempt) to logger at
// debug level; the sink itself logs each state change once. Call it once at
// startup, before New; it affects every go-redis client in the process.
func SetClientLogger(logger *slog.Logger) {
	goredis.SetLogger(clientLogger{logger})
}

type clientLogger struct{ l *slog.Logger }

func (c clientLogger) Printf(ctx context.Context, format string, v ...any) {
	if c.l.Enabled(ctx, slog.LevelDebug) {
		c.l.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
	}
}

// hostOf returns the host part of a host:port address.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
