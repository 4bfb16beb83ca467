// Package redis is the Redis Streams source of the handler framework: a
// consumer group member (XREADGROUP) that reads entries in both content
// modes outbox-cdc's Redis sink writes (and that any producer can).
//
// # Entries
//
// An entry with a "specversion" field is binary mode: one field per
// attribute (specversion, id, source, type, ..., one per extension) and
// "data" holding the payload bytes. An entry with a single "event" field
// is structured mode: the event in the CloudEvents JSON format. The
// ordering key is the partitionkey extension.
//
// # Acknowledgement, pending entries, dead consumers
//
// An entry is acknowledged (XACK, pipelined) after its effect committed,
// it was a duplicate, or it was parked. At start the source first reads
// its own pending entries (XREADGROUP ... 0: what this consumer name took
// and never acknowledged before a crash), then new ones (">"), so a
// consumer restarted under the same name keeps per-key order: give each
// instance a stable Config.Consumer.
//
// Entries that another consumer took and never acknowledged (it died) are
// claimed with XAUTOCLAIM once they have been idle for Config.ClaimIdle.
// While this source holds entries (queued or running) it resets their idle
// time every ClaimIdle/3 (XCLAIM ... JUSTID to itself), so that no other
// consumer claims them mid-handler. A claimed entry may run after later
// events of its key that this consumer read meanwhile.
//
// Consumers idle for longer than Config.DeleteIdle are deleted from the
// group (XGROUP DELCONSUMER) — but never one with pending entries: deleting
// a consumer drops its pending entries from the group, and they would
// never be delivered again. The check and the delete are one Lua script,
// so a consumer that takes entries in between is not deleted.
//
// A failing entry with no dead-letter store is left pending (not
// acknowledged, no longer kept alive); it is claimed again after
// ClaimIdle. Lag is the group's lag (XINFO GROUPS, Redis 7+) per stream.
package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/handler"
)

// Defaults of Config's zero fields.
const (
	DefaultCount     = 100
	DefaultBlock     = 2 * time.Second
	DefaultClaimIdle = time.Minute
)

// Config configures a Source.
type Config struct {
	// Client is the Redis client; the caller closes it. Required.
	Client redis.UniversalClient
	// Streams are the stream keys to read. Required.
	Streams []string
	// Group is the consumer group, created (with MKSTREAM) when missing.
	// Required.
	Group string
	// Consumer is this member's name in the group. Default the host name.
	// Keep it stable across restarts: a restarted consumer first reads
	// the entries it left pending.
	Consumer string
	// StartAt is where a new group starts: "0" (default: the whole
	// stream) or "$" (new entries only).
	StartAt string
	// Count bounds entries per read. Default 100.
	Count int
	// Block is how long one read waits for entries. Default 2s.
	Block time.Duration
	// ClaimIdle: entries pending on another consumer for this long are
	// claimed. Default 1m; keep it well above a handler's longest pause
	// (the source keeps held entries fresh every ClaimIdle/3).
	ClaimIdle time.Duration
	// DeleteIdle: consumers idle this long with no pending entries are
	// deleted from the group. Default 0: never.
	DeleteIdle time.Duration
}

// Source is a Redis Streams consumer group member.
type Source struct {
	cfg Config

	mu   sync.Mutex
	held map[string]map[string]bool // stream → entry ids held here

	acks chan ack
	q    handler.Queue
	log  *slog.Logger
}

type ack struct{ stream, id string }

var _ handler.Source = (*Source)(nil)

// New checks cfg and returns a Source.
func New(cfg Config) (*Source, error) {
	if cfg.Consumer == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, errors.New("handler/redis: Config.Consumer is required (no host name)")
		}
		cfg.Consumer = h
	}
	if cfg.StartAt == "" {
		cfg.StartAt = "0"
	}
	if cfg.Count <= 0 {
		cfg.Count = DefaultCount
	}
	if cfg.Block <= 0 {
		cfg.Block = DefaultBlock
	}
	if cfg.ClaimIdle <= 0 {
		cfg.ClaimIdle = DefaultClaimIdle
	}
	switch {
	case cfg.Client == nil:
		return nil, errors.New("handler/redis: Config.Client is required")
	case len(cfg.Streams) == 0 || cfg.Group == "":
		return nil, errors.New("handler/redis: Config.Streams and Config.Group are required")
	}
	held := map[string]map[string]bool{}
	for _, s := range cfg.Streams {
		held[s] = map[string]bool{}
	}
	return &Source{cfg: cfg, held: held, acks: make(chan ack, 4096)}, nil
}

// Run implements handler.Source.
func (s *Source) Run(ctx context.Context, q handler.Queue) error {
	s.q, s.log = q, q.Logger().With("source", "redis", "group", s.cfg.Group, "consumer", s.cfg.Consumer)
	c := s.cfg.Client
	for _, st := range s.cfg.Streams {
		err := c.XGroupCreateMkStream(ctx, st, s.cfg.Group, s.cfg.StartAt).Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			q.Drain()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("handler/redis: creating group %s on stream %s: %w", s.cfg.Group, st, err)
		}
	}
	bg, stopBg := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.acker(bg) })
	wg.Go(func() { s.keepFresh(ctx) })
	wg.Go(func() { s.maintain(ctx) })

	err := s.read(ctx)

	q.Drain()
	stopBg() // the acker flushes what the drain acknowledged
	wg.Wait()
	return err
}

func (s *Source) read(ctx context.Context) error {
	// Own pending entries first: what this consumer took before a crash.
	for _, st := range s.cfg.Streams {
		start := "0"
		for {
			res, err := s.cfg.Client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: s.cfg.Group, Consumer: s.cfg.Consumer,
				Streams: []string{st, start}, Count: int64(s.cfg.Count)}).Result()
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				return fmt.Errorf("handler/redis: reading pending entries of %s: %w", st, err)
			}
			if len(res) == 0 || len(res[0].Messages) == 0 {
				break
			}
			for _, m := range res[0].Messages {
				if err := s.submit(ctx, st, m, true); err != nil {
					return nil
				}
				start = m.ID
			}
		}
	}
	args := &redis.XReadGroupArgs{Group: s.cfg.Group, Consumer: s.cfg.Consumer, Count: int64(s.cfg.Count), Block: s.cfg.Block}
	for _, st := range s.cfg.Streams {
		args.Streams = append(args.Streams, st)
	}
	for range s.cfg.Streams {
		args.Streams = append(args.Streams, ">")
	}
	failing := false
	for {
		res, err := s.cfg.Client.XReadGroup(ctx, args).Result()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			if !failing {
				s.log.Warn("reading the streams fails; retrying", "err", err)
				failing = true
			}
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		if failing {
			s.log.Info("reading the streams works again")
			failing = false
		}
		for _, xs := range res {
			for _, m := range xs.Messages {
				if err := s.submit(ctx, xs.Stream, m, false); err != nil {
					return nil
				}
			}
		}
	}
}

func (s *Source) submit(ctx context.Context, stream string, m redis.XMessage, redelivered bool) error {
	d := decode(m)
	d.Position = stream + "/" + m.ID
	d.Redelivered = redelivered
	s.mu.Lock()
	if s.held[stream][m.ID] {
		s.mu.Unlock()
		return nil // held already (claimed back while it waits here)
	}
	s.held[stream][m.ID] = true
	s.mu.Unlock()
	var once sync.Once
	drop := func() {
		s.mu.Lock()
		delete(s.held[stream], m.ID)
		s.mu.Unlock()
	}
	d.Ack = func() {
		once.Do(func() {
			drop()
			s.acks <- ack{stream, m.ID}
		})
	}
	d.Release = func() { once.Do(drop) } // stays pending: claimed or re-read later
	if err := s.q.Submit(ctx, d); err != nil {
		d.Release()
		return err
	}
	return nil
}

// acker sends XACKs, pipelined, until ctx is done and nothing is left.
func (s *Source) acker(ctx context.Context) {
	for {
		var batch []ack
		select {
		case a := <-s.acks:
			batch = append(batch, a)
		case <-ctx.Done():
			select {
			case a := <-s.acks:
				batch = append(batch, a)
			default:
				return
			}
		}
	more:
		for len(batch) < 512 {
			select {
			case a := <-s.acks:
				batch = append(batch, a)
			default:
				break more
			}
		}
		byStream := map[string][]string{}
		for _, a := range batch {
			byStream[a.stream] = append(byStream[a.stream], a.id)
		}
		for try := 0; ; try++ {
			_, err := s.cfg.Client.Pipelined(context.Background(), func(p redis.Pipeliner) error {
				for st, ids := range byStream {
					p.XAck(context.Background(), st, s.cfg.Group, ids...)
				}
				return nil
			})
			if err == nil {
				break
			}
			if try == 0 {
				s.log.Warn("XACK failed; retrying (unacknowledged entries are skipped by the inbox when delivered again)", "err", err)
			}
			if try >= 20 {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// keepFresh resets the idle time of the entries held here, so that other
// consumers do not claim them while they wait or run.
func (s *Source) keepFresh(ctx context.Context) {
	t := time.NewTicker(s.cfg.ClaimIdle / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		ids := map[string][]string{}
		for st, m := range s.held {
			for id := range m {
				ids[st] = append(ids[st], id)
			}
		}
		s.mu.Unlock()
		for st, list := range ids {
			for len(list) > 0 {
				n := min(len(list), 500)
				s.cfg.Client.XClaimJustID(ctx, &redis.XClaimArgs{Stream: st, Group: s.cfg.Group, Consumer: s.cfg.Consumer, Messages: list[:n]})
				list = list[n:]
			}
		}
	}
}

// deleteIdle deletes a consumer only when it has no pending entries and
// has been idle long enough, atomically.
var deleteIdle = redis.NewScript(`
local deleted = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i+1] elseif c[i] == 'pending' then pending = c[i+1] elseif c[i] == 'idle' then idle = c[i+1] end
  end
  if name ~= ARGV[3] and pending == 0 and idle >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    table.insert(deleted, name)
  end
end
return deleted`)

// maintain claims entries left by dead consumers, deletes idle consumers
// without pending entries and reports the group's lag.
func (s *Source) maintain(ctx context.Context) {
	t := time.NewTicker(max(s.cfg.ClaimIdle/2, 100*time.Millisecond))
	defer t.Stop()
	for {
		for _, st := range s.cfg.Streams {
			if err := s.claim(ctx, st); err != nil && ctx.Err() == nil {
				s.log.Warn("cannot claim pending entries", "stream", st, "err", err)
			}
			if s.cfg.DeleteIdle > 0 {
				names, err := deleteIdle.Run(ctx, s.cfg.Client, []string{st}, s.cfg.Group, s.cfg.DeleteIdle.Milliseconds(), s.cfg.Consumer).StringSlice()
				if err == nil && len(names) > 0 {
					s.log.Info("deleted idle consumers without pending entries", "stream", st, "consumers", names)
				}
			}
			if gs, err := s.cfg.Client.XInfoGroups(ctx, st).Result(); err == nil {
				for _, g := range gs {
					if g.Name == s.cfg.Group && g.Lag >= 0 {
						s.q.Observer().Lag(s.q.Consumer(), st, g.Lag)
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// claim takes over entries idle for ClaimIdle on any consumer.
func (s *Source) claim(ctx context.Context, stream string) error {
	start := "0-0"
	total := 0
	for {
		msgs, next, err := s.cfg.Client.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: stream, Group: s.cfg.Group, Consumer: s.cfg.Consumer,
			MinIdle: s.cfg.ClaimIdle, Start: start, Count: int64(s.cfg.Count)}).Result()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if s.submit(ctx, stream, m, true) != nil {
				return nil
			}
		}
		total += len(msgs)
		if next == "0-0" || next == "" {
			break
		}
		start = next
	}
	if total > 0 {
		s.log.Info("claimed entries left pending by other consumers", "stream", stream, "entries", total)
	}
	return nil
}

// decode reads an entry: binary (one field per attribute) or structured
// (one "event" field).
func decode(m redis.XMessage) *handler.Delivery {
	d := &handler.Delivery{}
	attrs := map[string]string{}
	var data []byte
	hasData := false
	for k, v := range m.Values {
		sv := fmt.Sprint(v)
		if k == "data" {
			data, hasData = []byte(sv), true
			continue
		}
		attrs[k] = sv
	}
	switch {
	case attrs["specversion"] != "":
		if !hasData {
			data = nil
		}
		d.Event, d.Err = handler.FromBinary(attrs, data)
	case attrs["event"] != "" && len(attrs) == 1:
		d.Event, d.Err = handler.FromStructured([]byte(attrs["event"]))
	default:
		d.Err = errors.New("neither binary mode (no specversion field) nor structured mode (no single event field)")
	}
	if d.Err == nil {
		d.Key = handler.Key(&d.Event, "")
	}
	return d
}
