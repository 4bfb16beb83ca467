package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/delivery"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

var _ sink.Sink = (*Sink)(nil)

// Sink publishes events to Kafka with an idempotent franz-go producer
// (acks=all, up to 5 requests in flight per broker, order kept per
// partition across retries). It is the Kafka adapter of the delivery engine
// (internal/delivery): it encodes events into records, produces them, and
// maps franz-go's errors; the engine owns the in-flight window, the sticky
// failure, Flush and Close.
//
// Publish and Flush are called from one goroutine; acknowledgements arrive
// on franz-go's promise goroutine. Close may be called from any goroutine
// and is idempotent.
type Sink struct {
	cfg   Config
	opts  sink.Options
	tmpl  *sink.Template
	fixed *topicInfo // the topic when the template is static

	client *kgo.Client
	admin  *kadm.Client
	health *delivery.Health
	ext    extHeaders
	eng    *delivery.Engine[rec]

	topics     sync.Map // topic name -> *topicInfo
	structured bool
	promise    func(*kgo.Record, error)
}

// New validates cfg, connects to the brokers and checks what can be known at
// startup: that a broker answers within ConnectTimeout, that the credentials
// are accepted, and that a fixed topic exists (or creates it). It starts
// franz-go's goroutines; call Close to stop them.
func New(ctx context.Context, cfg Config, opts sink.Options) (*Sink, error) {
	opts = opts.WithDefaults()
	fail := func(format string, args ...any) error {
		return fmt.Errorf("sink %s: "+format, append([]any{opts.Name}, args...)...)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fail("invalid kafka config: %w", err)
	}
	cfg = cfg.withDefaults()
	tmpl, err := sink.ParseDestination(cfg.Topic, topicRules)
	if err != nil {
		return nil, fail("%w", err)
	}
	s := &Sink{
		cfg:        cfg,
		opts:       opts,
		tmpl:       tmpl,
		structured: cfg.ContentMode == ModeStructured,
		health:     delivery.NewHealth(opts.Name, opts.Logger, opts.Observer),
	}
	s.promise = s.onPromise
	s.health.Mute(true)

	kopts, err := s.clientOptions()
	if err != nil {
		return nil, fail("%w", err)
	}
	if s.client, err = kgo.NewClient(kopts...); err != nil {
		return nil, fail("kafka client: %w", err)
	}
	s.admin = kadm.NewClient(s.client)
	if cfg.SASL.Mechanism == SASLPlain && !cfg.TLS.On() {
		opts.Logger.Warn("kafka SASL PLAIN without TLS sends the password in clear text", "sink", opts.Name)
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	if err := s.ping(ctx); err != nil {
		s.client.Close()
		return nil, fail("%w", err)
	}
	if name, static := tmpl.Static(); static {
		ti, err := s.prepareTopicOnce(ctx, name)
		if err != nil {
			s.client.Close()
			if ctx.Err() != nil {
				return nil, fail("no answer about topic %q from brokers %s within %s: %w", name, strings.Join(cfg.Brokers, ","), cfg.ConnectTimeout, err)
			}
			return nil, fail("%w", err)
		}
		s.topics.Store(name, ti)
		s.fixed = ti
	}
	s.health.Mute(false)
	s.eng = delivery.New(delivery.Config{
		Name:        opts.Name,
		MaxInFlight: cfg.MaxInFlight,
		Retry:       cfg.Retry,
		Ack:         opts.Ack,
		Logger:      opts.Logger,
		Observer:    opts.Observer,
		Health:      s.health,
	}, adapter{s})
	opts.Logger.Info("kafka sink connected", "sink", opts.Name, "brokers", strings.Join(cfg.Brokers, ","), "topic", cfg.Topic,
		"content_mode", cfg.ContentMode, "compression", cfg.Compression)
	return s, nil
}

// ping waits until a broker answers a metadata request or ctx is done; an
// authentication or TLS failure ends it at once.
func (s *Sink) ping(ctx context.Context) error {
	brokers := strings.Join(s.cfg.Brokers, ",")
	var last error // the last failure that is not our own deadline
	for attempt := 1; ; attempt++ {
		err := s.client.Ping(ctx)
		if err == nil {
			return nil
		}
		if last == nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			last = err
		}
		err = last
		if errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) || errors.Is(err, kerr.UnsupportedSaslMechanism) {
			return fmt.Errorf("kafka brokers %s refused SASL %s login of user %q: %w; check sasl.username and sasl.password", brokers, s.cfg.SASL.Mechanism, s.cfg.SASL.Username, err)
		}
		var certErr *tls.CertificateVerificationError
		if errors.As(err, &certErr) {
			return fmt.Errorf("kafka brokers %s: TLS certificate not trusted: %w; check tls.ca_file and tls.server_name", brokers, err)
		}
		if ctx.Err() != nil || s.cfg.Retry.Sleep(ctx, attempt) != nil {
			what := "check brokers and that Kafka is running and reachable"
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				// Brokers close the connection on a TLS mismatch, and
				// some (older ones, kfake) on failed SASL logins.
				what = "the broker closed the connection: check the tls and sasl settings (mechanism, username, password)"
			}
			return fmt.Errorf("cannot reach kafka brokers %s within %s: %w; %s", brokers, s.cfg.ConnectTimeout, err, what)
		}
	}
}

func (s *Sink) clientOptions() ([]kgo.Opt, error) {
	cfg := s.cfg
	compression, _ := codec(cfg.Compression)
	backoff := cfg.Retry
	kopts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.WithLogger(newKgoLogger(s.opts.Logger, s.opts.Name)),
		kgo.WithHooks(hooks{s.health}),
		kgo.RetryBackoffFn(func(tries int) time.Duration { return backoff.Delay(tries) }),
		kgo.DialTimeout(cfg.ConnectTimeout),
		// franz-go refreshes metadata at most every 5s by default, so each
		// leader change (NOT_LEADER_FOR_PARTITION) could hold a partition
		// for 5s; the Java client waits 100ms.
		kgo.MetadataMinAge(500 * time.Millisecond),

		// Idempotent (franz-go's default) with acks from all in-sync
		// replicas: retries cannot duplicate or reorder records within a
		// partition, and an acknowledged record survives a leader change.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 like the Java client
		kgo.ProducerBatchCompression(compression),
		kgo.ProducerLinger(cfg.Linger),
		kgo.ProducerBatchMaxBytesFn(s.batchMaxFor),
		// Our own in-flight limit blocks Publish first; franz-go's never
		// blocks (it would spawn a goroutine per blocked record).
		kgo.MaxBufferedRecords(cfg.MaxInFlight + 1024),
		// Retries and delivery time stay unlimited (franz-go's defaults):
		// a broker down for minutes holds acknowledgements, it does not
		// fail records.
		kgo.ProducerOnDataLossDetected(func(topic string, partition int32) {
			s.opts.Logger.Error("kafka broker lost acknowledged records (out of order sequence number); continuing", "sink", s.opts.Name, "topic", topic, "partition", partition)
		}),
	}
	if strings.EqualFold(cfg.Compression, "lz4") {
		kopts = append(kopts, kgo.WithCompressor(newLZ4Compressor()))
	}
	if cfg.CreateTopics {
		// A topic the sink just created may take a moment to show up in
		// every broker's metadata.
		kopts = append(kopts, kgo.UnknownTopicRetries(-1))
	}
	if cfg.TLS.On() {
		tc, err := cfg.TLS.Build("")
		if err != nil {
			return nil, err
		}
		kopts = append(kopts, kgo.DialTLSConfig(tc))
	}
	if m := saslMechanism(cfg.SASL); m != nil {
		kopts = append(kopts, kgo.SASL(m))
	}
	return kopts, nil
}

func codec(name string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(name) {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4", "":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("%q is not none, gzip, snappy, lz4 or zstd", name)
}

func saslMechanism(c SASLConfig) sasl.Mechanism {
	switch c.Mechanism {
	case SASLPlain:
		return plain.Auth{User: c.Username, Pass: c.Password}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: c.Username, Pass: c.Password}.AsSha512Mechanism()
	}
	return nil
}

// Publish hands events to franz-go in order and returns; each event is
// acknowledged when its partition leader and all in-sync replicas have it.
// Publish blocks while MaxInFlight events are unacknowledged.
//
// It returns a *sink.PermanentError without taking events[i:] when event i
// cannot be routed (template error, invalid or missing topic) or does not fit
// in a record batch; events[:i] were taken. Such a failure leaves the sink
// usable. Once the brokers have rejected a record for good (see Flush), every
// later Publish returns that PermanentError and takes nothing. When ctx is
// done while Publish waits for room, it returns ctx's error; the events
// before the one waiting were taken.
func (s *Sink) Publish(ctx context.Context, events []*event.Event) error {
	return s.eng.Publish(ctx, events)
}

// topicFor routes e through the template, preparing a topic on first use.
func (s *Sink) topicFor(ctx context.Context, e *event.Event) (*topicInfo, error) {
	name, err := s.tmpl.Destination(e)
	if err != nil {
		return nil, s.permanent(e, err)
	}
	if ti := s.topic(name); ti != nil {
		return ti, nil
	}
	ti, err := s.prepareTopic(ctx, name)
	if err != nil {
		var te *TopicError
		if errors.As(err, &te) {
			return nil, s.permanent(e, err)
		}
		return nil, err
	}
	return ti, nil
}

// topicRules are Kafka's topic naming rules, and the separators a templated
// topic name may not start or end with.
var topicRules = sink.DestinationRules{Kind: "topic", Separators: "._-", Check: func(name string) error {
	if err := validTopicName(name); err != nil {
		return fmt.Errorf("%w: %v", kerr.InvalidTopicException, err)
	}
	return nil
}}

// Templates implements sink.Templated.
func (s *Sink) Templates() []*sink.Template { return []*sink.Template{s.tmpl} }

func (s *Sink) permanent(e *event.Event, err error) *sink.PermanentError {
	return &sink.PermanentError{Sink: s.opts.Name, EventID: e.ID, Err: err}
}

// adapter is the Sink as the delivery engine's Adapter.
type adapter struct{ s *Sink }

// Encode implements delivery.Adapter: it routes e to its topic (preparing
// the topic on first use) and builds its record, refusing one that cannot
// fit in a record batch of the topic.
func (a adapter) Encode(ctx context.Context, e *event.Event, r *rec) error {
	s := a.s
	ti := s.fixed
	if ti == nil {
		var err error
		if ti, err = s.topicFor(ctx, e); err != nil {
			return err
		}
	}
	r.build(e, ti.name, s.structured, time.Now(), &s.ext)
	if size := recordWireSize(&r.kr) + batchOverhead; size > int(ti.maxBatch) {
		return s.permanent(e, &tooLargeError{Topic: ti.name, Size: size, Max: ti.maxBatch})
	}
	return nil
}

// Send implements delivery.Adapter: it hands the records to franz-go, which
// never blocks here (its buffer is larger than the window) and calls the
// promise of each.
func (a adapter) Send(_ context.Context, b *delivery.Batch[rec]) {
	for i := range b.Len() {
		r := b.Msg(i)
		r.t = b.Ticket(i)
		a.s.client.Produce(context.Background(), &r.kr, a.s.promise)
	}
}

// Release implements delivery.Adapter.
func (adapter) Release(r *rec) { r.reset() }

// Flush implements delivery.Flusher: it sends what is lingering at once
// and waits for franz-go's buffered records.
func (a adapter) Flush(ctx context.Context) error { return a.s.client.Flush(ctx) }

// onPromise is franz-go's promise for every record: it runs on franz-go's
// promise goroutine, in order per partition, and must not block. Records
// franz-go fails because the client is closing reach the engine after
// Close, which ignores them: they stay unacknowledged.
func (s *Sink) onPromise(kr *kgo.Record, err error) {
	r := kr.Context.(*rec)
	if err != nil {
		err = produceError(r.kr.Topic, err)
	}
	s.eng.Settle(r.t, err)
}

// Failure returns the PermanentError of the earliest event the brokers
// rejected for good, or nil. Safe for concurrent use.
func (s *Sink) Failure() error { return s.eng.Failure() }

// Flush sends whatever is lingering and blocks until every event handed to
// Publish has been acknowledged, or ctx is done. It returns the first
// rejection as a *sink.PermanentError: that event and the ones franz-go
// failed behind it in its partition stay unacknowledged.
func (s *Sink) Flush(ctx context.Context) error { return s.eng.Flush(ctx) }

// Close stops the client without flushing: events not yet acknowledged stay
// unacknowledged, so the replication slot keeps them. Idempotent.
func (s *Sink) Close() error {
	return s.eng.Close(context.Background(), func() {
		s.health.Mute(true)
		s.client.Close()
	})
}
