// Package kafka is the Kafka source of the handler framework: a consumer
// group member (franz-go, cooperative-sticky balancing) that reads records
// in both CloudEvents content modes of the Kafka protocol binding.
//
// # Binding
//
// A record whose content-type header is application/cloudevents+json is
// structured mode: the value is the event in the JSON format. A record with
// a ce_specversion header is binary mode: attributes are the ce_* headers,
// datacontenttype is the content-type header, the value is the data. The
// ordering key is the partitionkey extension, else the record key.
// Anything else is an invalid message (logged, counted, skipped).
//
// # Offsets
//
// Autocommit is off. A partition's offset is committed only up to the
// first record not yet settled: records run concurrently across keys, so a
// later record may finish first, but no offset passes a record whose
// effect is not committed. Commits happen every Config.CommitInterval.
//
// When the group takes partitions away (another member joined, a
// cooperative rebalance), the source drops the revoked partitions' queued
// records, waits for their running handlers (which start no new attempt),
// commits what was handled and only then lets the rebalance go on
// (handle-then-commit on revoke). The new owner starts at that offset; the
// records it reads again that were handled beyond it (a later record that
// finished before an earlier one) are skipped by the inbox. Partitions
// lost outright (the session expired) are dropped without a commit.
//
// A record that fails every attempt with no dead-letter store is retried in
// place, holding its key (and its partition's committed offset): Kafka has
// no per-record negative acknowledgement.
//
// Lag is the partition's high watermark minus the next offset to read, as
// fetch responses report it (handler.Observer.Lag, partition
// "<topic>/<partition>").
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outbox-cdc/outbox-cdc/handler"
)

// Source is a Kafka consumer group member. Create it with New and hand it
// to handler.NewConsumer; it connects when the Consumer runs it.
type Source struct {
	cfg Config

	mu    sync.Mutex
	parts map[tp]*partState

	commitMu sync.Mutex // one commit at a time: never send an older offset after a newer one

	q   handler.Queue
	log *slog.Logger
}

var _ handler.Source = (*Source)(nil)

type tp struct {
	topic string
	part  int32
}

// entry is one record submitted, in offset order.
type entry struct {
	offset int64
	epoch  int32
	done   bool
}

type partState struct {
	tp      tp
	mu      sync.Mutex
	entries []*entry
	next    kgo.EpochOffset // committable: the offset after the handled prefix
	sent    int64           // last committed offset
	open    int             // submitted, not settled
	idle    chan struct{}   // closed and replaced when open drops
	revoked chan struct{}
	gone    bool
}

// New checks cfg and returns a Source.
func New(cfg Config) (*Source, error) {
	cfg = cfg.withDefaults()
	switch {
	case len(cfg.Brokers) == 0:
		return nil, errors.New("handler/kafka: Config.Brokers is required")
	case len(cfg.Topics) == 0:
		return nil, errors.New("handler/kafka: Config.Topics is required")
	case cfg.Group == "":
		return nil, errors.New("handler/kafka: Config.Group is required")
	case cfg.StartAt != "earliest" && cfg.StartAt != "latest":
		return nil, fmt.Errorf("handler/kafka: Config.StartAt %q: want earliest or latest", cfg.StartAt)
	}
	return &Source{cfg: cfg, parts: map[tp]*partState{}}, nil
}

// Run implements handler.Source.
func (s *Source) Run(ctx context.Context, q handler.Queue) error {
	s.q, s.log = q, q.Logger().With("source", "kafka", "group", s.cfg.Group)
	start := kgo.NewOffset().AtStart()
	if s.cfg.StartAt == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(s.cfg.Topics...),
		kgo.ConsumeResetOffset(start),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	}
	if s.cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(s.cfg.SessionTimeout))
	}
	if s.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(s.cfg.InstanceID))
	}
	if s.cfg.RebalanceTimeout > 0 {
		opts = append(opts, kgo.RebalanceTimeout(s.cfg.RebalanceTimeout))
	}
	cl, err := kgo.NewClient(append(opts, s.cfg.Options...)...)
	if err != nil {
		q.Drain()
		return fmt.Errorf("handler/kafka: %w", err)
	}
	commitCtx, stopCommits := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.commitLoop(commitCtx, cl) })

	err = s.poll(ctx, cl)

	// Stop: settle what is held, commit it, leave the group.
	q.Drain()
	stopCommits()
	wg.Wait()
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	s.commit(cctx, cl, nil)
	cancel()
	cl.Close()
	return err
}

func (s *Source) poll(ctx context.Context, cl *kgo.Client) error {
	failing := false
	for {
		fs := cl.PollRecords(ctx, s.cfg.MaxPollRecords)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("%s/%d: %w", t, p, err)
			}
		})
		if ferr != nil && !failing {
			s.log.Warn("fetching fails; franz-go retries", "err", ferr)
			failing = true
		} else if ferr == nil && failing {
			s.log.Info("fetching works again")
			failing = false
		}
		var err error
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if err != nil || len(p.Records) == 0 {
				return
			}
			last := p.Records[len(p.Records)-1]
			s.q.Observer().Lag(s.q.Consumer(), fmt.Sprintf("%s/%d", p.Topic, p.Partition), max(p.HighWatermark-last.Offset-1, 0))
			s.mu.Lock()
			ps := s.parts[tp{p.Topic, p.Partition}]
			s.mu.Unlock()
			for _, r := range p.Records {
				if err = s.submit(ctx, ps, r); err != nil {
					return
				}
			}
		})
		if err != nil {
			return nil // ctx done
		}
	}
}

func (s *Source) submit(ctx context.Context, ps *partState, r *kgo.Record) error {
	if ps == nil {
		return nil // not ours any more
	}
	ps.mu.Lock()
	if ps.gone {
		ps.mu.Unlock()
		return nil
	}
	en := &entry{offset: r.Offset, epoch: r.LeaderEpoch}
	ps.entries = append(ps.entries, en)
	ps.open++
	ps.mu.Unlock()
	d := decode(r)
	d.Revoked = ps.revoked
	var once sync.Once
	d.Ack = func() { once.Do(func() { ps.settle(en, true) }) }
	d.Release = func() { once.Do(func() { ps.settle(en, false) }) }
	if err := s.q.Submit(ctx, d); err != nil {
		d.Release()
		return err
	}
	return nil
}

// settle records the outcome of one record.
func (ps *partState) settle(en *entry, done bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.open--
	close(ps.idle)
	ps.idle = make(chan struct{})
	if !done {
		return
	}
	en.done = true
	i := 0
	for ; i < len(ps.entries) && ps.entries[i].done; i++ {
		ps.next = kgo.EpochOffset{Epoch: ps.entries[i].epoch, Offset: ps.entries[i].offset + 1}
		ps.entries[i] = nil
	}
	ps.entries = ps.entries[i:]
}

// waitIdle waits until nothing of ps is held.
func (ps *partState) waitIdle(ctx context.Context) bool {
	for {
		ps.mu.Lock()
		if ps.open == 0 {
			ps.mu.Unlock()
			return true
		}
		ch := ps.idle
		ps.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

func (s *Source) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			k := tp{t, p}
			// Nothing is committable until a record was handled: committing
			// before that would rewind the group to offset 0.
			s.parts[k] = &partState{tp: k, idle: make(chan struct{}), revoked: make(chan struct{}), next: kgo.EpochOffset{Epoch: -1, Offset: -1}, sent: -1}
		}
	}
	s.log.Info("partitions assigned", "partitions", fmt.Sprint(m))
}

// take removes the partitions of m from the source and marks them revoked:
// their queued records are dropped, and running ones start no new attempt.
func (s *Source) take(m map[string][]int32) []*partState {
	var out []*partState
	s.mu.Lock()
	for t, ps := range m {
		for _, p := range ps {
			k := tp{t, p}
			if st := s.parts[k]; st != nil {
				delete(s.parts, k)
				st.mu.Lock()
				st.gone = true
				close(st.revoked)
				st.mu.Unlock()
				out = append(out, st)
			}
		}
	}
	s.mu.Unlock()
	if len(out) > 0 && s.q != nil {
		chans := map[<-chan struct{}]bool{}
		for _, st := range out {
			chans[st.revoked] = true
		}
		s.q.Drop(func(d *handler.Delivery) bool { return chans[d.Revoked] })
	}
	return out
}

// revoked is handle-then-commit: drop the queued, wait for the running,
// commit what was handled, then let the rebalance proceed.
func (s *Source) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	states := s.take(m)
	if len(states) == 0 {
		return
	}
	for _, st := range states {
		st.waitIdle(ctx)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s.commit(cctx, cl, states)
	s.log.Info("partitions revoked; handled records committed", "partitions", fmt.Sprint(m))
}

func (s *Source) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	if len(s.take(m)) > 0 {
		s.log.Warn("partitions lost (the group session expired); their records will be read again by the new owner", "partitions", fmt.Sprint(m))
	}
}

func (s *Source) commitLoop(ctx context.Context, cl *kgo.Client) {
	t := time.NewTicker(s.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.commit(ctx, cl, nil)
		}
	}
}

// commit commits the handled prefix of states (nil: every owned partition).
func (s *Source) commit(ctx context.Context, cl *kgo.Client, states []*partState) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if states == nil {
		s.mu.Lock()
		for _, st := range s.parts {
			states = append(states, st)
		}
		s.mu.Unlock()
	}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	var sent []*partState
	for _, st := range states {
		st.mu.Lock()
		if st.next.Offset >= 0 && st.next.Offset > st.sent {
			if offsets[st.tp.topic] == nil {
				offsets[st.tp.topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[st.tp.topic][st.tp.part] = st.next
			sent = append(sent, st)
		}
		st.mu.Unlock()
	}
	if len(sent) == 0 {
		return
	}
	var cerr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsgReq, resp *kmsgResp, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if e := kerrFor(p.ErrorCode); e != nil && cerr == nil {
					cerr = e
				}
			}
		}
	})
	if cerr != nil {
		if ctx.Err() == nil {
			s.log.Warn("cannot commit offsets; the next commit retries", "err", cerr)
		}
		return
	}
	for _, st := range sent {
		st.mu.Lock()
		st.sent = offsets[st.tp.topic][st.tp.part].Offset
		st.mu.Unlock()
	}
}
