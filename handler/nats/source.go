// Package nats is the NATS JetStream source of the handler framework: a
// durable pull consumer that reads messages in both CloudEvents content
// modes of the NATS protocol binding.
//
// # Binding
//
// A message with a ce-specversion header is binary mode: every ce-<name>
// header is an attribute (values percent-decoded, as outbox-cdc and the
// binding's 1.0.3 draft write them; a value that does not decode is taken
// as is), datacontenttype is ce-datacontenttype or else Content-Type, and
// the payload is the data. Any other message is structured mode: the
// payload is the event in the JSON format (binding 1.0.2 and earlier,
// without headers). The ordering key is the partitionkey extension.
//
// # Acknowledgement
//
// The consumer is a durable with explicit acks. A message is acked after
// its effect committed (or it was a duplicate, or parked). While the
// source holds a message, queued behind a slow one or running, it sends an
// in-progress ack every AckWait/3, so JetStream does not redeliver it
// elsewhere mid-handler; Config.Prefetch bounds how many messages wait in
// the client. Should an ack still arrive after AckWait (the process
// stalled), the redelivery finds the event in the inbox and is skipped: an
// ack is only ever sent for an effect that committed, so it cannot stand
// for a redelivery that failed.
//
// A message that failed every attempt with no dead-letter store is nak'ed
// with the consumer's backoff as delay; JetStream redelivers it up to
// Config.MaxDeliver times. Later messages of its key may run before the
// redelivery: use a dead-letter store where per-key order matters. At a
// stop, messages not started are nak'ed without delay.
//
// # Order across restarts
//
// Messages a previous instance took and never acked are redelivered only
// after their AckWait, while new messages flow at once. So that they do
// not run after later events of their key, a starting source that finds
// unacknowledged messages on the durable waits one AckWait before it
// pulls: JetStream then hands out the due redeliveries before anything new,
// and the source runs them in stream order (JetStream queues them in the
// order their deadlines passed, which in-progress acks reshuffle). (Several instances sharing one durable get
// interleaved messages and keep no per-key order between them; partition
// by subject, one durable per partition, where that matters.)
//
// Lag is the consumer's NumPending, as each message's metadata reports it
// (handler.Observer.Lag, partition "<stream>/<durable>").
package nats

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outbox-cdc/outbox-cdc/handler"
)

// Defaults of Config's zero fields.
const (
	DefaultAckWait       = 30 * time.Second
	DefaultMaxAckPending = 1000
	DefaultPrefetch      = 100
)

// Config configures a Source.
type Config struct {
	// Conn is the connection to use; the caller closes it. When nil, the
	// source connects to URL with Options and closes the connection itself.
	Conn *natsgo.Conn
	// URL is the server URL (comma-separated for several). Required
	// without Conn.
	URL string
	// Options are extra nats.go options (credentials, TLS) for URL.
	Options []natsgo.Option
	// Stream is the JetStream stream. Required; it must exist.
	Stream string
	// Durable is the durable consumer's name, created or updated by Run.
	// Required.
	Durable string
	// FilterSubjects restrict the consumer to these subjects. Default all.
	FilterSubjects []string
	// AckWait is how long JetStream waits for an ack before it redelivers.
	// Default 30s. The source keeps held messages alive with in-progress
	// acks, and a restart waits one AckWait when unacked messages remain.
	AckWait time.Duration
	// MaxDeliver bounds deliveries per message (naks and crashes count).
	// Default -1: unlimited. JetStream stops delivering a message past it,
	// and only an advisory tells.
	MaxDeliver int
	// MaxAckPending bounds messages delivered and not acked. Default 1000.
	MaxAckPending int
	// Prefetch bounds messages pulled ahead into the client. Default 100.
	Prefetch int
	// StartAt is where a new durable starts: "all" (default) or "new".
	StartAt string
}

// Source is a JetStream durable pull consumer.
type Source struct {
	cfg Config

	mu   sync.Mutex
	held map[jetstream.Msg]struct{}

	q   handler.Queue
	log *slog.Logger
}

var _ handler.Source = (*Source)(nil)

// New checks cfg and returns a Source.
func New(cfg Config) (*Source, error) {
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = -1
	}
	if cfg.MaxAckPending <= 0 {
		cfg.MaxAckPending = DefaultMaxAckPending
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = DefaultPrefetch
	}
	if cfg.StartAt == "" {
		cfg.StartAt = "all"
	}
	switch {
	case cfg.Conn == nil && cfg.URL == "":
		return nil, errors.New("handler/nats: Config.URL or Config.Conn is required")
	case cfg.Stream == "" || cfg.Durable == "":
		return nil, errors.New("handler/nats: Config.Stream and Config.Durable are required")
	case cfg.StartAt != "all" && cfg.StartAt != "new":
		return nil, fmt.Errorf("handler/nats: Config.StartAt %q: want all or new", cfg.StartAt)
	}
	return &Source{cfg: cfg, held: map[jetstream.Msg]struct{}{}}, nil
}

// Run implements handler.Source.
func (s *Source) Run(ctx context.Context, q handler.Queue) error {
	s.q, s.log = q, q.Logger().With("source", "nats", "stream", s.cfg.Stream, "durable", s.cfg.Durable)
	defer q.Drain()
	nc := s.cfg.Conn
	if nc == nil {
		var err error
		if nc, err = natsgo.Connect(s.cfg.URL, s.cfg.Options...); err != nil {
			return fmt.Errorf("handler/nats: connecting to %s: %w", redact(s.cfg.URL), err)
		}
		defer nc.Close()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("handler/nats: %w", err)
	}
	cc := jetstream.ConsumerConfig{
		Durable: s.cfg.Durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: s.cfg.AckWait,
		MaxDeliver: s.cfg.MaxDeliver, MaxAckPending: s.cfg.MaxAckPending, FilterSubjects: s.cfg.FilterSubjects,
	}
	if s.cfg.StartAt == "new" {
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, s.cfg.Stream, cc)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("handler/nats: durable %s on stream %s: %w", s.cfg.Durable, s.cfg.Stream, err)
	}
	var first []*handler.Delivery
	if info, err := cons.Info(ctx); err == nil && info.NumAckPending > 0 {
		wait := s.cfg.AckWait + s.cfg.AckWait/10 + 100*time.Millisecond
		s.log.Info("messages of a previous instance are unacknowledged; waiting for them to come due so they run first",
			"unacknowledged", info.NumAckPending, "wait", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
		if first, err = s.takeDue(ctx, cons, info.NumAckPending); err != nil {
			return err
		}
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.cfg.Prefetch))
	if err != nil {
		return fmt.Errorf("handler/nats: %w", err)
	}
	stopIt := context.AfterFunc(ctx, it.Drain)
	defer stopIt()
	progCtx, stopProg := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.progress(progCtx) })
	defer func() {
		q.Drain()
		stopProg()
		wg.Wait()
	}()

	for _, d := range first {
		if q.Submit(ctx, d) != nil {
			d.Release()
		}
	}
	lag := s.cfg.Stream + "/" + s.cfg.Durable
	failing := false
	for {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			if !failing {
				s.log.Warn("pulling messages fails; retrying", "err", err)
				failing = true
			}
			continue
		}
		if failing {
			s.log.Info("pulling messages works again")
			failing = false
		}
		if ctx.Err() != nil {
			m.Nak() // buffered after the stop: hand it back at once
			continue
		}
		d := s.delivery(m)
		if meta, err := m.Metadata(); err == nil {
			q.Observer().Lag(q.Consumer(), lag, int64(meta.NumPending))
		}
		if q.Submit(ctx, d) != nil {
			d.Release()
		}
	}
}

// takeDue fetches the redeliveries that came due (JetStream hands them out
// before new messages, but in the order their deadlines passed, not in
// stream order) and returns them sorted by stream sequence, followed by any
// new message fetched with them.
func (s *Source) takeDue(ctx context.Context, cons jetstream.Consumer, pending int) ([]*handler.Delivery, error) {
	type msg struct {
		m   jetstream.Msg
		seq uint64
	}
	var due, fresh []msg
	for len(due) < pending && len(fresh) == 0 {
		batch, err := cons.Fetch(min(pending-len(due), s.cfg.Prefetch), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil
			}
			return nil, fmt.Errorf("handler/nats: fetching redeliveries: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				fresh = append(fresh, msg{m: m})
				continue
			}
			if meta.NumDelivered > 1 {
				due = append(due, msg{m, meta.Sequence.Stream})
			} else {
				fresh = append(fresh, msg{m, meta.Sequence.Stream})
			}
		}
		if n == 0 {
			break
		}
	}
	slices.SortFunc(due, func(a, b msg) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]*handler.Delivery, 0, len(due)+len(fresh))
	for _, m := range append(due, fresh...) {
		out = append(out, s.delivery(m.m))
	}
	return out, nil
}

func (s *Source) delivery(m jetstream.Msg) *handler.Delivery {
	d := decode(m)
	if meta, err := m.Metadata(); err == nil {
		d.Position = fmt.Sprintf("%s/%d", meta.Stream, meta.Sequence.Stream)
		d.Redelivered = meta.NumDelivered > 1
	}
	s.mu.Lock()
	s.held[m] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	drop := func() {
		s.mu.Lock()
		delete(s.held, m)
		s.mu.Unlock()
	}
	d.Ack = func() {
		once.Do(func() {
			drop()
			if err := m.Ack(); err != nil {
				s.log.Debug("ack failed; the redelivery will be skipped by the inbox", "position", d.Position, "err", err)
			}
		})
	}
	d.Nak = func(delay time.Duration) {
		once.Do(func() {
			drop()
			m.NakWithDelay(delay)
		})
	}
	d.Release = func() {
		once.Do(func() {
			drop()
			m.Nak()
		})
	}
	return d
}

// progress sends in-progress acks for every held message, so that
// JetStream does not redeliver what waits or runs here.
func (s *Source) progress(ctx context.Context) {
	t := time.NewTicker(s.cfg.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(s.held))
		for m := range s.held {
			msgs = append(msgs, m)
		}
		s.mu.Unlock()
		for _, m := range msgs {
			m.InProgress()
		}
	}
}

// decode reads a message per the CloudEvents NATS binding.
func decode(m jetstream.Msg) *handler.Delivery {
	d := &handler.Delivery{Position: m.Subject()}
	attrs := map[string]string{}
	var ct string
	for k, vs := range m.Headers() {
		if len(vs) == 0 {
			continue
		}
		switch lk := strings.ToLower(k); {
		case lk == "content-type":
			ct = vs[0]
		case strings.HasPrefix(lk, "ce-"):
			v, err := url.PathUnescape(vs[0])
			if err != nil {
				v = vs[0]
			}
			attrs[lk[3:]] = v
		}
	}
	if attrs["specversion"] != "" && !handler.IsStructured(ct) {
		if attrs["datacontenttype"] == "" && ct != "" {
			attrs["datacontenttype"] = ct
		}
		d.Event, d.Err = handler.FromBinary(attrs, m.Data())
	} else {
		d.Event, d.Err = handler.FromStructured(m.Data())
	}
	if d.Err == nil {
		d.Key = handler.Key(&d.Event, "")
	}
	return d
}

// redact hides passwords in a server URL list.
func redact(u string) string {
	var out []string
	for _, p := range strings.Split(u, ",") {
		if pu, err := url.Parse(strings.TrimSpace(p)); err == nil && pu.User != nil {
			pu.User = url.User(pu.User.Username())
			p = pu.String()
		}
		out = append(out, p)
	}
	return strings.Join(out, ",")
}
