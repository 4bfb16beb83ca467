package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

var _ sink.Sink = (*Sink)(nil)

// Sink publishes events to a JetStream stream with asynchronous publishes
// and acknowledges each event once the server acknowledged it (its PubAck).
//
// New starts one goroutine, the ack collector, that reads the publish
// futures in order; Close stops it and closes the connection. Publish and
// Flush are called by one goroutine; Close may be called from any.
type Sink struct {
	cfg     Config
	opts    sink.Options
	log     *slog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream // the configured stream, to read stored copies of duplicates
	subj    *sink.Template
	strict  bool
	pubOpts []jetstream.PublishOpt

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the collector returned

	// Used by the Publish goroutine only.
	enc      *encoder
	filters  []string         // the stream's subjects
	subjects map[string]error // subject -> nil when publishable, else why not

	// sendMu is held by whoever writes messages to the connection: Publish,
	// or the collector while it switches to recovering. Lock order: sendMu,
	// then mu.
	sendMu sync.Mutex

	mu          sync.Mutex
	ring        []entry // events taken and not acknowledged, oldest at head
	head, count int
	recovering  bool          // the collector resends; Publish only queues
	prevID      string        // message id the next publish expects last in the stream ("" = none)
	err         error         // the permanent failure, sticky
	flushed     chan struct{} // closed when count drops to 0
	wantSpace   bool          // Publish waits for room in ring

	work        chan struct{} // ring became non-empty
	space       chan struct{} // ring has room again
	reconnected chan struct{}
	denied      chan struct{} // a publish permission violation arrived
	failed      chan struct{} // closed when err is set
	closeOnce   sync.Once

	sends        atomic.Uint64 // messages sent, numbering entry.seq
	deny         atomic.Pointer[denial]
	lastAsyncErr atomic.Pointer[string]

	// Used by the collector only.
	attempt   int // failed rounds since the last acknowledgement
	downSince time.Time
	wrongLast int    // consecutive "wrong last msg id" failures naming a foreign message
	lastAcked string // message id of the last event acknowledged
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
		cfg:    cfg,
		opts:   opts,
		log:    opts.Logger,
		subj:   tmpl,
		strict: !cfg.RelaxedOrder,
		// No publish retries inside nats.go: a retry there would overtake
		// later messages. The sink resends, in order.
		pubOpts:     []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)},
		done:        make(chan struct{}),
		enc:         newEncoder(cfg.ContentMode == ModeStructured),
		subjects:    make(map[string]error),
		ring:        make([]entry, cfg.MaxInFlight),
		work:        make(chan struct{}, 1),
		space:       make(chan struct{}, 1),
		reconnected: make(chan struct{}, 1),
		denied:      make(chan struct{}, 1),
		failed:      make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	nopts, err := s.natsOptions()
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("sink %s: %w", opts.Name, err)
	}
	s.nc, err = nats.Connect(cfg.URL, nopts...)
	if err != nil {
		s.cancel()
		return nil, s.connectError(err)
	}
	fail := func(err error) (*Sink, error) {
		s.cancel()
		s.nc.Close()
		return nil, fmt.Errorf("sink %s: %w", opts.Name, err)
	}
	if !s.nc.HeadersSupported() {
		return fail(errors.New("the NATS server does not support message headers (NATS 2.2 or later is needed)"))
	}
	s.js, err = jetstream.New(s.nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return fail(err)
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	err = s.setupStream(sctx)
	cancel()
	if err != nil {
		return fail(err)
	}
	go s.run()
	s.log.Info("nats sink connected", "sink", opts.Name, "url", s.nc.ConnectedUrlRedacted(),
		"stream", cfg.Stream.Name, "subject", cfg.Subject, "content_mode", cfg.ContentMode, "strict_order", s.strict)
	return s, nil
}

// Publish takes events in order. Each is encoded and published
// asynchronously; Publish returns once all are taken, blocking while
// MaxInFlight events await their acknowledgement. It returns ctx.Err() when
// ctx is done (events taken before stay in flight), sink.ErrClosed after
// Close, and a *sink.PermanentError for an event that cannot be delivered,
// then and on every later call.
func (s *Sink) Publish(ctx context.Context, events []*event.Event) error {
	for _, e := range events {
		if err := s.publish(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) publish(ctx context.Context, e *event.Event) error {
	select {
	case <-s.failed:
		return s.failure()
	case <-s.ctx.Done():
		return sink.ErrClosed
	default:
	}
	subject, err := s.subject(e)
	if err != nil {
		return s.fail(&sink.PermanentError{Sink: s.opts.Name, EventID: e.ID, Err: err})
	}
	p := s.enc.encode(e, subject)
	if err := s.waitSpace(ctx); err != nil {
		return err
	}

	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	s.mu.Lock()
	if s.recovering {
		// The collector is resending older events; it sends this one too.
		s.pushLocked(p)
		s.mu.Unlock()
		return nil
	}
	prev := s.prevID
	s.mu.Unlock()

	s.chain(&p, prev)
	p.seq = s.sends.Add(1)
	p.fut, p.sendErr = s.js.PublishMsgAsync(p.msg, s.pubOpts...)
	if p.sendErr != nil {
		if err := s.permanent(&p, p.sendErr); err != nil {
			return s.fail(err)
		}
	}
	s.mu.Lock()
	if p.sendErr != nil {
		// Not sent (e.g. disconnected): later events must wait for it.
		s.recovering = true
	} else {
		s.prevID = p.id
	}
	s.pushLocked(p)
	s.mu.Unlock()
	return nil
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

func (s *Sink) waitSpace(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.count < len(s.ring) {
			s.mu.Unlock()
			return nil
		}
		s.wantSpace = true
		s.mu.Unlock()
		select {
		case <-s.space:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return sink.ErrClosed
		case <-s.failed:
			return s.failure()
		}
	}
}

// pushLocked appends p to the ring, which has room. s.mu is held.
func (s *Sink) pushLocked(p entry) {
	i := s.head + s.count
	if i >= len(s.ring) {
		i -= len(s.ring)
	}
	s.ring[i] = p
	s.count++
	if s.count == 1 {
		signal(s.work)
	}
}

// Flush blocks until every event taken by Publish is acknowledged, ctx is
// done, the sink failed permanently (its *sink.PermanentError is returned)
// or it is closed.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	if s.err != nil || s.count == 0 {
		err := s.err
		s.mu.Unlock()
		return err
	}
	if s.flushed == nil {
		s.flushed = make(chan struct{})
	}
	ch := s.flushed
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-s.failed:
		return s.failure()
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return sink.ErrClosed
	}
}

// Close stops the ack collector and closes the connection. Events not yet
// acknowledged stay unacknowledged. Close is idempotent and safe for
// concurrent use.
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		<-s.done
		s.nc.Close()
	})
	return nil
}

// fail records the sink's permanent failure (the first one wins) and returns
// it.
func (s *Sink) fail(err *sink.PermanentError) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
		close(s.failed)
		s.log.Error("nats sink: event cannot be delivered; stopping", "sink", s.opts.Name,
			"event", err.EventID, "err", err.Err)
	}
	return s.err
}

func (s *Sink) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// run is the ack collector: it waits for the future of the oldest event,
// acknowledges it, and on a failure resends that event and every later one.
func (s *Sink) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		for s.count == 0 {
			s.mu.Unlock()
			select {
			case <-s.work:
			case <-s.ctx.Done():
				return
			}
			s.mu.Lock()
		}
		p := &s.ring[s.head]
		s.mu.Unlock()
		// The collector owns the entries in the ring: Publish only appends.

		pa, err := p.ack, p.sendErr
		if pa == nil && err == nil && p.fut == nil {
			err = errNotSent
		}
		if pa == nil && err == nil {
			if d := s.deniedFor(p); d != nil {
				// The server refused the subject after p was sent: p is
				// dropped and will never be acknowledged.
				select {
				case pa = <-p.fut.Ok():
				default:
					err = d.err
				}
			}
		}
		if pa == nil && err == nil {
			select {
			case pa = <-p.fut.Ok():
			case err = <-p.fut.Err():
			case <-s.denied:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		if err == nil {
			s.ackHead(p, pa)
			continue
		}
		p.fut, p.sendErr = nil, nil
		if perr := s.permanent(p, err); perr != nil {
			s.fail(perr)
			<-s.ctx.Done()
			return
		}
		if !s.recover(err) {
			<-s.ctx.Done()
			return
		}
	}
}

// ackHead removes the head entry p, which the server stored, and
// acknowledges its event.
func (s *Sink) ackHead(p *entry, pa *jetstream.PubAck) {
	e, subject, seq := p.e, p.msg.Subject, p.seq
	s.lastAcked = p.id
	// Acknowledge before the entry leaves the ring: Flush returns once the
	// ring is empty, and every acknowledgement must have happened by then.
	if pa.Duplicate {
		s.opts.Duplicate(e, s.storedLSN(pa))
	}
	s.opts.Ack(e)

	s.mu.Lock()
	*p = entry{}
	s.head++
	if s.head == len(s.ring) {
		s.head = 0
	}
	s.count--
	if s.count == 0 && s.flushed != nil {
		close(s.flushed)
		s.flushed = nil
	}
	if s.wantSpace && s.count <= len(s.ring)-len(s.ring)/4-1 {
		// Wake Publish only when a quarter of the ring is free, so it
		// fills it in a burst rather than one event per wake-up.
		s.wantSpace = false
		signal(s.space)
	}
	s.mu.Unlock()

	if s.attempt > 0 {
		s.log.Info("nats sink recovered; publishing again", "sink", s.opts.Name,
			"failed_rounds", s.attempt, "down_for", time.Since(s.downSince).Round(time.Millisecond))
		s.attempt, s.wrongLast = 0, 0
	}
	if d := s.deny.Load(); d != nil && d.subject == subject && seq > d.seq {
		s.deny.CompareAndSwap(d, nil) // the permission was granted since
	}
}

// deniedFor returns the publish permission violation that covers p: one for
// p's subject reported after p was sent.
func (s *Sink) deniedFor(p *entry) *denial {
	d := s.deny.Load()
	if d == nil || d.subject != p.msg.Subject || d.seq < p.seq {
		return nil
	}
	return d
}

// recover handles a transient failure of the head entry: it stops Publish
// from sending, waits for every outstanding publish to settle, backs off,
// waits for the connection, and resends the head entry and every later one
// not known to be stored, in order. It returns true once all are resent and
// false when the sink is closing or failed permanently.
func (s *Sink) recover(cause error) bool {
	s.sendMu.Lock()
	s.mu.Lock()
	s.recovering = true
	pending := s.count
	s.mu.Unlock()
	s.sendMu.Unlock()
	for {
		s.attempt++
		s.opts.Observer.Retried(s.opts.Name, cause)
		if s.attempt == 1 {
			s.downSince = time.Now()
			s.log.Warn("nats sink: publish failed; resending unacknowledged events in order", "sink", s.opts.Name,
				"err", cause, "unacknowledged", pending)
		}
		if !s.drain() {
			return false
		}
		// The first event resent expects the last one stored before it,
		// unless the stream's last message is not the sink's: then it
		// starts a new chain.
		expect := true
		if last, ok := wrongLastID(cause); ok && s.strict {
			expect = s.storedThrough(last)
			s.noteForeign(!expect, cause)
		}
		if errors.Is(cause, jetstream.ErrNoStreamResponse) || errors.Is(cause, nats.ErrNoResponders) {
			if gone, err := s.streamGone(); gone {
				s.fail(&sink.PermanentError{Sink: s.opts.Name, EventID: s.ring[s.head].e.ID, Err: err})
				return false
			}
		}
		if !s.pause() {
			return false
		}
		err := s.resend(expect)
		if err == nil {
			return true
		}
		var perr *sink.PermanentError
		if errors.As(err, &perr) {
			s.fail(perr)
			return false
		}
		cause = err
	}
}

// drain waits until every sent entry's publish has settled (acknowledged,
// failed or timed out after AckTimeout) and records the ones that were
// stored, so that nothing sent before the resend can land after it.
func (s *Sink) drain() bool {
	for i := 0; ; i++ {
		s.mu.Lock()
		if i >= s.count {
			s.mu.Unlock()
			return true
		}
		p := s.at(i)
		s.mu.Unlock()
		p.sendErr = nil
		if p.fut == nil {
			continue
		}
		select {
		case pa := <-p.fut.Ok():
			p.ack = pa
		case <-p.fut.Err():
		case <-s.ctx.Done():
			return false
		}
		p.fut = nil
	}
}

// pause waits out the backoff, cut short by a reconnection, and then until
// the client is connected.
func (s *Sink) pause() bool {
	t := time.NewTimer(s.cfg.Retry.Delay(s.attempt))
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.reconnected:
	case <-s.ctx.Done():
		return false
	}
	for !s.nc.IsConnected() {
		t.Reset(250 * time.Millisecond)
		select {
		case <-s.reconnected:
		case <-t.C:
		case <-s.ctx.Done():
			return false
		}
	}
	return true
}

// resend publishes, in order, every entry not known to be stored. Each one
// expects the one before it (everything before the first is stored), the
// first one the last event acknowledged; with expect false, or when nothing
// was acknowledged yet, the first expects nothing. When all are sent it
// hands sending back to Publish.
//
// The expectation on the first makes a resend of an event the stream
// already holds fail with "wrong last msg id" naming the stream's last
// message even after the duplicate window has passed (a long outage), and
// storedThrough then counts the events up to it as stored.
func (s *Sink) resend(expect bool) error {
	first := true
	last := s.lastAcked
	for i := 0; ; i++ {
		s.mu.Lock()
		if i >= s.count {
			s.recovering = false
			s.prevID = last
			s.mu.Unlock()
			return nil
		}
		p := s.at(i)
		s.mu.Unlock()
		if p.ack == nil {
			prev := last
			if first && !expect {
				prev = ""
			}
			first = false
			s.chain(p, prev)
			p.seq = s.sends.Add(1)
			fut, err := s.js.PublishMsgAsync(p.msg, s.pubOpts...)
			if err != nil {
				if perr := s.permanent(p, err); perr != nil {
					return perr
				}
				return err
			}
			p.fut = fut
		}
		last = p.id
	}
}

// at returns the i-th entry from the head. s.mu is held.
func (s *Sink) at(i int) *entry {
	i += s.head
	if i >= len(s.ring) {
		i -= len(s.ring)
	}
	return &s.ring[i]
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
// message. When id is an unacknowledged entry's, that entry and every one
// before it are stored (with strict order the stream holds the sink's
// events in order) and are marked so: they are acknowledged as duplicates
// without being resent. It reports whether id is the sink's own, so the
// chain can go on from it.
func (s *Sink) storedThrough(id string) bool {
	if id == "" {
		return false
	}
	if id == s.lastAcked {
		return true
	}
	s.mu.Lock()
	n := s.count
	s.mu.Unlock()
	for j := 0; j < n; j++ {
		s.mu.Lock()
		p := s.at(j)
		s.mu.Unlock()
		if p.id != id {
			continue
		}
		for k := 0; k <= j; k++ {
			s.mu.Lock()
			q := s.at(k)
			s.mu.Unlock()
			if q.ack == nil {
				q.ack = &jetstream.PubAck{Stream: s.cfg.Stream.Name, Duplicate: true}
			}
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
