// Command consumer is the handler framework's test consumer: it reads one
// broker through handler/{kafka,nats,redis} and records every event it
// applies, inside the inbox transaction, in applied(pos, key, seq, id), so
// that the tests can check exactly-once effects and per-key order after
// SIGKILLs. Configured by environment variables (see main).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/handler"
	"github.com/outbox-cdc/outbox-cdc/handler/inbox"
	"github.com/outbox-cdc/outbox-cdc/handler/kafka"
	"github.com/outbox-cdc/outbox-cdc/handler/nats"
	"github.com/outbox-cdc/outbox-cdc/handler/redis"
)

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func dur(k string, def time.Duration) time.Duration {
	if v := os.Getenv(k); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			panic(err)
		}
		return d
	}
	return def
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	conc, _ := strconv.Atoi(env("CONCURRENCY", "8"))
	pcfg, err := pgxpool.ParseConfig(os.Getenv("PG_URL"))
	if err != nil {
		return err
	}
	// Each running handler holds one connection for its inbox transaction,
	// and the test hooks below take another.
	pcfg.MaxConns = int32(2*conc + 2)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	ib, err := inbox.New(pool, inbox.Config{})
	if err != nil {
		return err
	}
	name := env("NAME", "test-consumer")
	var src handler.Source
	switch os.Getenv("BROKER") {
	case "kafka":
		src, err = kafka.New(kafka.Config{Brokers: strings.Split(os.Getenv("KAFKA_BROKERS"), ","), Topics: []string{os.Getenv("TOPIC")},
			Group: name, InstanceID: os.Getenv("INSTANCE_ID"), SessionTimeout: dur("SESSION_TIMEOUT", 6*time.Second), CommitInterval: 200 * time.Millisecond})
	case "nats":
		src, err = nats.New(nats.Config{URL: os.Getenv("NATS_URL"), Stream: os.Getenv("STREAM"), Durable: name, AckWait: dur("ACK_WAIT", 2*time.Second)})
	case "redis":
		c := goredis.NewClient(&goredis.Options{Addr: os.Getenv("REDIS_ADDR")})
		defer c.Close()
		src, err = redis.New(redis.Config{Client: c, Streams: []string{os.Getenv("STREAM")}, Group: name, Consumer: env("MEMBER", "m1"),
			ClaimIdle: dur("CLAIM_IDLE", 2*time.Second), DeleteIdle: dur("DELETE_IDLE", 0)})
	default:
		return fmt.Errorf("BROKER=%q", os.Getenv("BROKER"))
	}
	if err != nil {
		return err
	}
	maxSleep := dur("HANDLER_SLEEP", 2*time.Millisecond)
	failEvents := os.Getenv("FAIL_EVENTS") != ""             // fail while the id is in fail_events
	recordDeliveries := os.Getenv("RECORD_DELIVERIES") != "" // log every delivery in deliveries
	r := handler.NewRouter()
	r.Handle("test.*", func(ctx context.Context, e cloudevents.Event) error {
		var d struct {
			Agg string `json:"agg"`
			Seq int    `json:"seq"`
		}
		if err := e.DataAs(&d); err != nil {
			return handler.Permanent(err)
		}
		if recordDeliveries {
			info, _ := handler.DeliveryFromContext(ctx)
			if _, err := pool.Exec(ctx, "INSERT INTO deliveries (id, redelivered, position) VALUES ($1, $2, $3)", e.ID(), info.Redelivered, info.Position); err != nil {
				return err
			}
		}
		if failEvents {
			var fail bool
			if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM fail_events WHERE id = $1)", e.ID()).Scan(&fail); err != nil {
				return err
			}
			if fail {
				pool.Exec(ctx, "INSERT INTO attempts (id) VALUES ($1)", e.ID())
				return fmt.Errorf("event %s is made to fail", e.ID())
			}
		}
		if _, err := inbox.Tx(ctx).Exec(ctx, "INSERT INTO applied (key, seq, id) VALUES ($1, $2, $3)", d.Agg, d.Seq, e.ID()); err != nil {
			return err
		}
		if maxSleep > 0 {
			time.Sleep(rand.N(maxSleep)) // mid-handler, inside the transaction
		}
		return nil
	})
	c, err := handler.NewConsumer(handler.Config{Name: name, Concurrency: conc, Store: ib, DeadLetters: ib, Attempts: 3,
		Backoff: handler.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}, ReplayInterval: 200 * time.Millisecond,
		Logger: logger}, r, src)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "consumer: running")
	return c.Run(ctx)
}
