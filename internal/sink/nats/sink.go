package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/internal/delivery"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

var _ sink.Sink = (*Sink)(nil)

// Sink publishes events to a JetStream stream with asynchronous publishes
// and acknowledges each event once the server acknowledged it (its PubAck).
// It is the NATS adapter of the delivery engine (internal/delivery): it
// encodes events into messages, publishes them (chaining them with
// Nats-Expected-Last-Msg-Id in strict order), and maps nats.go's errors and
// JetStream's error codes; the engine owns the in-flight window, the
// in-order acknowledgements, the sticky failure and the ordered resends.
//
// New starts the engine's goroutine; Close stops it and closes the
// connection. Publish and Flush are called by one goroutine; Close may be
// called from any.
type Sink struct {
	cfg    Config
	opts   sink.Options
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream // the configured stream, to read stored copies of duplicates
	subj   *sink.Template
	strict bool
	pub    *publisher
	eng    *delivery.Engine[entry]

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc

	reconnected  chan struct{} // capacity 1: cuts a backoff short
	deny         atomic.Pointer[denial]
	lastAsyncErr atomic.Pointer[string]

	// Used by the Publish goroutine only.
	enc      *encoder
	filters  []string         // the stream's subjects
	subjects map[string]error // subject -> nil when publishable, else why not

	// Used by the engine goroutine only (Send, Recover, Delivered).
	lastAcked string // message id of the last event acknowledged
	fresh     bool   // the next message sent expects nothing (a new chain)
	wrongLast int    // consecutive "wrong last msg id" failures naming a foreign message
	dupRead   dupReader
}

// New validates cfg, connects to the server (giving up after
// cfg.ConnectTimeout), finds or creates the stream and checks that it covers
// the subject template. It returns an error prefixed "sink <name>: " when any
// of that fails. The returned Sink must be closed.
func New(ctx context.Context, cfg Config, opts sink.Options) (*Sink, error) {
	opts = opts.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sink %s: invalid nats configuration: %w", opts.Name, err)
	}
	cfg = cfg.withDefaults()
	tmpl, err := sink.ParseDestination(cfg.Subject, subjectRules)
	if err != nil {
		return nil, fmt.Errorf("sink %s: subject: %w", opts.Name, err)
	}
	s := &Sink{
		cfg:         cfg,
		opts:        opts,
		log:         opts.Logger,
		subj:        tmpl,
		strict:      !cfg.RelaxedOrder,
		enc:         newEncoder(cfg.ContentMode == ModeStructured),
		subjects:    make(map[string]error),
		reconnected: make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// The engine exists before the connection, whose handlers use it.
	s.eng = delivery.New(delivery.Config{
		Name:        opts.Name,
		MaxInFlight: cfg.MaxInFlight,
		MaxBatch:    sendBatch,
		Ordered:     true,
		// A message the server can never take stops the sink, whether
		// the sink sees it before sending (an invalid subject, one outside
		// the stream, over max_payload) or the server refuses it.
		EncodeErrorsStick: true,
		Retry:             cfg.Retry,
		Wake:              s.reconnected,
		Ack:               opts.Ack,
		Logger:            opts.Logger,
		Observer:          opts.Observer,
	}, adapter{s})
	stop := func() {
		s.cancel()
		_ = s.eng.Close(context.Background(), nil)
	}

	nopts, err := s.natsOptions()
	if err != nil {
		stop()
		return nil, fmt.Errorf("sink %s: %w", opts.Name, err)
	}
	s.nc, err = nats.Connect(cfg.URL, nopts...)
	if err != nil {
		stop()
		return nil, s.connectError(err)
	}
	fail := func(err error) (*Sink, error) {
		stop()
		s.nc.Close()
		return nil, fmt.Errorf("sink %s: %w", opts.Name, err)
	}
	if !s.nc.HeadersSupported() {
		return fail(errors.New("the NATS server does not support message headers (NATS 2.2 or later is needed)"))
	}
	// The JetStream context manages the stream and reads stored copies;
	// messages go through the sink's own publisher. No publish is retried
	// there: a retry would overtake later messages. The engine resends, in
	// order.
	s.js, err = jetstream.New(s.nc)
	if err != nil {
		return fail(err)
	}
	s.pub, err = newPublisher(s.nc, cfg.AckTimeout, s.onPubAck, s.onPubError)
	if err != nil {
		return fail(err)
	}
	fail = func(err error) (*Sink, error) {
		stop()
		s.pub.close()
		s.nc.Close()
		return nil, fmt.Errorf("sink %s: %w", opts.Name, err)
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	err = s.setupStream(sctx)
	cancel()
	if err != nil {
		return fail(err)
	}
	s.log.Info("nats sink connected", "sink", opts.Name, "url", s.nc.ConnectedUrlRedacted(),
		"stream", cfg.Stream.Name, "subject", cfg.Subject, "content_mode", cfg.ContentMode, "strict_order", s.strict)
	return s, nil
}

// sendBatch is the most messages one Send publishes before the engine
// acknowledges what came back meanwhile.
const sendBatch = 256

// Publish takes events in order. Each is encoded and published
// asynchronously; Publish returns once all are taken, blocking while
// MaxInFlight events await their acknowledgement. It returns ctx.Err() when
// ctx is done (events taken before stay in flight), sink.ErrClosed after
// Close, and a *sink.PermanentError for an event that cannot be delivered
// (a subject that is invalid or outside the stream, or a message larger
// than the server's max_payload, are found here, without taking that event
// or the ones after it; a refusal by the server comes later), then and on
// every later call.
func (s *Sink) Publish(ctx context.Context, events []*event.Event) error {
	return s.eng.Publish(ctx, events)
}

// Flush blocks until every event taken by Publish is acknowledged, ctx is
// done, the sink failed permanently (its *sink.PermanentError is returned)
// or it is closed.
func (s *Sink) Flush(ctx context.Context) error { return s.eng.Flush(ctx) }

// Close stops the engine and closes the connection. Events not yet
// acknowledged stay unacknowledged. Close is idempotent and safe for
// concurrent use.
func (s *Sink) Close() error {
	return s.eng.Close(context.Background(), func() {
		s.cancel()
		s.pub.close()
		s.nc.Close()
	})
}

// subject returns the subject for e, checked to be publishable and in the
// stream. Results are cached per subject.
func (s *Sink) subject(e *event.Event) (string, error) {
	subj, err := s.subj.Destination(e)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidSubject, err)
	}
	if err, ok := s.subjects[subj]; ok {
		return subj, err
	}
	err = checkSubject(subj)
	if err == nil && !matchAny(s.filters, subj) {
		s.refreshFilters()
		if !matchAny(s.filters, subj) {
			err = fmt.Errorf("%w: subject %q is not one of stream %q's subjects %q",
				ErrSubjectNotInStream, subj, s.cfg.Stream.Name, s.filters)
		}
	}
	if len(s.subjects) >= 4096 {
		clear(s.subjects)
	}
	s.subjects[subj] = err
	return subj, err
}

// chain sets or removes the Nats-Expected-Last-Msg-Id header of p: with
// strict order every message names the one published before it, so the
// server refuses it unless that one is the last in the stream.
func (s *Sink) chain(p *entry, prev string) {
	if !s.strict {
		return
	}
	if prev == "" {
		delete(p.msg.Header, hdrExpectLast)
		return
	}
	p.exp[0] = prev
	p.msg.Header[hdrExpectLast] = p.exp
}

// adapter is the Sink as the delivery engine's Adapter.
type adapter struct{ s *Sink }

// Encode implements delivery.Adapter: it checks e's subject, builds its
// message and checks it against the server's max_payload, as nats.go would
// when it is sent (the chain header added then may still push it over).
func (a adapter) Encode(_ context.Context, e *event.Event, p *entry) error {
	s := a.s
	subject, err := s.subject(e)
	if err != nil {
		return err
	}
	s.enc.encode(e, subject, p)
	if max := s.nc.MaxPayload(); max > 0 && int64(msgSize(&p.msg)) > max {
		return s.classify(p, nats.ErrMaxPayload)
	}
	return nil
}

// Release implements delivery.Adapter.
func (adapter) Release(p *entry) { *p = entry{} }

// Send implements delivery.Adapter: it publishes the messages
// asynchronously, in order, each (in strict order) expecting the one before
// it as the stream's last message: the one before in the batch, or the
// message before the batch, or the last one acknowledged, or none when a
// recovery found the stream's last message is not the sink's. The server's
// replies settle them through onPubAck and onPubError.
func (a adapter) Send(_ context.Context, b *delivery.Batch[entry]) {
	s := a.s
	prev := s.lastAcked
	if p := b.Prev(); p != nil {
		prev = p.id
	}
	if s.fresh {
		prev, s.fresh = "", false
	}
	for i := range b.Len() {
		p := b.Msg(i)
		s.chain(p, prev)
		prev = p.id
		p.t = b.Ticket(i)
		if err := s.pub.publish(p); err != nil {
			// Not sent (e.g. disconnected): it and the rest wait for the
			// engine's resend.
			b.Settle(i, s.classify(p, err))
			for j := i + 1; j < b.Len(); j++ {
				b.Settle(j, delivery.ErrNotSent)
			}
			return
		}
	}
}

// onPubAck is the publisher's acknowledgement handler: the server stored
// the message as stream sequence seq (or holds it already, a duplicate,
// whose stored copy Delivered reads). It must not block.
func (s *Sink) onPubAck(p *entry, seq uint64, dup bool) {
	var note uint64
	if dup {
		note = seq<<1 | 1
	}
	s.eng.Stored(p.t, note)
}

// onPubError is the publisher's handler of failed publishes: an error from
// the server, no acknowledgement within AckTimeout, a lost connection.
func (s *Sink) onPubError(p *entry, err error) {
	s.eng.Settle(p.t, s.classify(p, err))
}

// Delivered implements delivery.Deliverer: right before an event is
// acknowledged, in order, it reports a duplicate (reading the stored copy)
// and remembers the message as the last one acknowledged.
func (a adapter) Delivered(e *event.Event, p *entry, note uint64) {
	s := a.s
	if note&1 != 0 {
		s.opts.Duplicate(e, s.storedLSN(note>>1))
	}
	s.lastAcked = p.id
	s.wrongLast = 0
	if d := s.deny.Load(); d != nil && d.subject == p.msg.Subject {
		s.deny.CompareAndSwap(d, nil) // the permission was granted since
	}
}

// Recover implements delivery.Recoverer. After a transient failure, once
// every publish settled and the backoff passed: a "wrong last msg id"
// refusal that names one of the sink's unacknowledged messages means it and
// every one before it are stored (with strict order the stream holds the
// sink's events in order): they are acknowledged as duplicates instead of
// being resent. One that names a foreign message starts a new chain. No
// responders may mean the stream was deleted: without stream.create that is
// permanent. Then it waits for the connection.
func (a adapter) Recover(ctx context.Context, cause error, p *delivery.Pending[entry]) error {
	s := a.s
	expect := true
	if last, ok := wrongLastID(cause); ok && s.strict {
		expect = s.storedThrough(last, p)
		s.noteForeign(!expect, cause)
	}
	if errors.Is(cause, jetstream.ErrNoStreamResponse) || errors.Is(cause, nats.ErrNoResponders) {
		if gone, err := s.streamGone(); gone {
			return delivery.Permanent(err)
		}
	}
	s.fresh = !expect
	t := time.NewTimer(0)
	defer t.Stop()
	for !s.nc.IsConnected() {
		t.Reset(250 * time.Millisecond)
		select {
		case <-s.reconnected:
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// deniedFor returns the publish permission violation that covers p: one for
// p's subject.
func (s *Sink) deniedFor(p *entry) *denial {
	d := s.deny.Load()
	if d == nil || d.subject != p.msg.Subject {
		return nil
	}
	return d
}

// wrongLastID returns the stream's last message id from a "wrong last msg
// ID" refusal.
func wrongLastID(err error) (string, bool) {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeWrongLastMsgID {
		return "", false
	}
	_, id, ok := strings.Cut(apiErr.Description, "wrong last msg ID: ")
	return id, ok
}

// storedThrough handles a refusal that named id as the stream's last
// message. When id is an unacknowledged message's, that message and every
// one before it are stored (with strict order the stream holds the sink's
// events in order) and are marked so: they are acknowledged as duplicates
// without being resent. It reports whether id is the sink's own, so the
// chain can go on from it.
func (s *Sink) storedThrough(id string, p *delivery.Pending[entry]) bool {
	if id == "" {
		return false
	}
	if id == s.lastAcked {
		return true
	}
	for j := range p.Len() {
		if p.Msg(j).id != id {
			continue
		}
		for k := 0; k <= j; k++ {
			p.MarkStored(k, 1) // a duplicate whose stored copy is not known
		}
		return true
	}
	return false
}

// noteForeign logs once when strict order keeps failing because the
// stream's last message is not the sink's: another client publishes to it.
func (s *Sink) noteForeign(foreign bool, err error) {
	if !foreign {
		s.wrongLast = 0
		return
	}
	s.wrongLast++
	if s.wrongLast == 3 {
		s.log.Warn("nats sink: the stream's last message keeps not being the sink's own; "+
			"another client publishes to the stream (set relaxed_order: true to allow that)",
			"sink", s.opts.Name, "stream", s.cfg.Stream.Name, "err", err)
	}
}
