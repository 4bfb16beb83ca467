package inbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/handler"
)

// Defaults of RedisConfig's zero fields.
const (
	DefaultRedisPrefix = "outbox-cdc:inbox"
	DefaultRedisTTL    = 7 * 24 * time.Hour
	DefaultRedisLease  = 5 * time.Minute
)

// RedisConfig configures a RedisStore.
type RedisConfig struct {
	// Prefix starts every key: "<prefix>:<consumer>:<dedup key>". Default
	// "outbox-cdc:inbox".
	Prefix string
	// TTL is how long an event is remembered as done. Default 7 days.
	TTL time.Duration
	// Lease is how long a running handler holds an event before another
	// delivery may run it. Default 5m; keep it above the longest attempt
	// (use handler.Timeout).
	Lease time.Duration
}

// RedisStore is a handler.Store in Redis for services without PostgreSQL.
// Its guarantee is weaker than the Inbox's: see the package documentation.
// Safe for concurrent use.
type RedisStore struct {
	c   redis.UniversalClient
	cfg RedisConfig
}

var _ handler.Store = (*RedisStore)(nil)

// NewRedis returns a store over c (which the caller closes).
func NewRedis(c redis.UniversalClient, cfg RedisConfig) *RedisStore {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultRedisPrefix
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultRedisTTL
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultRedisLease
	}
	return &RedisStore{c: c, cfg: cfg}
}

// releaseLease deletes the key only while it still holds our lease.
var releaseLease = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// Once implements handler.Store: a lease before fn, "done" after it. It
// returns handler.ErrBusy while another delivery holds the lease.
func (s *RedisStore) Once(ctx context.Context, consumer string, e *cloudevents.Event, fn func(context.Context) error) error {
	key := s.cfg.Prefix + ":" + consumer + ":" + event.DedupKey(e.Source(), e.ID())
	var tok [12]byte
	rand.Read(tok[:])
	lease := "running:" + hex.EncodeToString(tok[:])
	ok, err := s.c.SetNX(ctx, key, lease, s.cfg.Lease).Result()
	if err != nil {
		return fmt.Errorf("inbox: redis: %w", err)
	}
	if !ok {
		v, err := s.c.Get(ctx, key).Result()
		switch {
		case err == nil && v == "done":
			return handler.ErrDuplicate
		case err == nil || errors.Is(err, redis.Nil):
			return handler.ErrBusy
		default:
			return fmt.Errorf("inbox: redis: %w", err)
		}
	}
	if err := fn(ctx); err != nil {
		releaseLease.Run(context.WithoutCancel(ctx), s.c, []string{key}, lease)
		return err
	}
	// The effect happened: report success even when the mark fails (the
	// lease then expires and a redelivery may run the event again).
	s.c.Set(context.WithoutCancel(ctx), key, "done", s.cfg.TTL)
	return nil
}
