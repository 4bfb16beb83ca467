// Command order-projection is an example service built on outbox-cdc's
// handler framework: it consumes com.example.order.* events from Kafka,
// NATS JetStream or Redis Streams and keeps, per order, the number of
// events and the sum of their amounts in PostgreSQL, each event exactly
// once through the inbox.
//
//	BROKER=kafka|nats|redis PG_URL=postgres://... go run ./examples/order-projection
//
// Addresses come from KAFKA_BROKERS (default 127.0.0.1:9092), NATS_URL
// (default nats://127.0.0.1:4222) and REDIS_ADDR (default 127.0.0.1:6379);
// the topic, stream and subject default to what the README's sink example
// names them (outbox.order, OUTBOX, outbox:order), and flags override them.
// It creates its tables when missing:
//
//	order_projection(aggregate_id text primary key, events int not null, total numeric not null)
//	outbox_inbox (the inbox, see handler/inbox)
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/outbox-cdc/outbox-cdc/handler"
	"github.com/outbox-cdc/outbox-cdc/handler/inbox"
	"github.com/outbox-cdc/outbox-cdc/handler/kafka"
	"github.com/outbox-cdc/outbox-cdc/handler/nats"
	"github.com/outbox-cdc/outbox-cdc/handler/prom"
	"github.com/outbox-cdc/outbox-cdc/handler/redis"
)

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func main() {
	broker := flag.String("broker", os.Getenv("BROKER"), "kafka, nats or redis (default $BROKER)")
	topic := flag.String("topic", "outbox.order", "kafka: the topic")
	natsStream := flag.String("nats-stream", "OUTBOX", "nats: the JetStream stream")
	ackWait := flag.Duration("nats-ack-wait", 30*time.Second, "nats: AckWait (a restart after a crash waits this long for unacknowledged messages)")
	subject := flag.String("subject", "outbox.order", "nats: the subject to consume (\"\" for the whole stream)")
	redisStream := flag.String("redis-stream", "outbox:order", "redis: the stream key")
	name := flag.String("name", "order-projection", "consumer name: inbox key, consumer group and durable")
	member := flag.String("member", "", "kafka: static member id; redis: consumer name (default the host name)")
	concurrency := flag.Int("concurrency", 16, "orders handled at once")
	metricsAddr := flag.String("metrics-addr", "", "serve Prometheus metrics on this address, e.g. 127.0.0.1:9188 (default none)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *metricsAddr != "" {
		go func() {
			logger.Error("metrics server stopped", "err", http.ListenAndServe(*metricsAddr, promhttp.Handler()))
		}()
	}
	if err := run(*broker, *topic, *natsStream, *ackWait, *subject, *redisStream, *name, *member, *concurrency, logger); err != nil {
		logger.Error("order-projection stopped", "err", err)
		os.Exit(1)
	}
}

func run(broker, topic, natsStream string, ackWait time.Duration, subject, redisStream, name, member string, concurrency int, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	pcfg, err := pgxpool.ParseConfig(os.Getenv("PG_URL"))
	if err != nil {
		return fmt.Errorf("PG_URL: %w", err)
	}
	pcfg.MaxConns = int32(concurrency + 2) // one per running handler, plus the replay loop
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := inbox.Migrate(ctx, pool, ""); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS order_projection (
    aggregate_id text PRIMARY KEY,
    events int NOT NULL,
    total numeric NOT NULL)`); err != nil {
		return err
	}
	ib, err := inbox.New(pool, inbox.Config{})
	if err != nil {
		return err
	}

	var src handler.Source
	switch broker {
	case "kafka":
		src, err = kafka.New(kafka.Config{Brokers: strings.Split(getenv("KAFKA_BROKERS", "127.0.0.1:9092"), ","),
			Topics: []string{topic}, Group: name, InstanceID: member})
	case "nats":
		var filter []string
		if subject != "" {
			filter = []string{subject}
		}
		src, err = nats.New(nats.Config{URL: getenv("NATS_URL", "nats://127.0.0.1:4222"), Stream: natsStream, Durable: name, FilterSubjects: filter, AckWait: ackWait})
	case "redis":
		c := goredis.NewClient(&goredis.Options{Addr: getenv("REDIS_ADDR", "127.0.0.1:6379")})
		defer c.Close()
		src, err = redis.New(redis.Config{Client: c, Streams: []string{redisStream}, Group: name, Consumer: member})
	default:
		return fmt.Errorf("BROKER=%q: want kafka, nats or redis", broker)
	}
	if err != nil {
		return err
	}

	r := handler.NewRouter()
	r.Handle("com.example.order.*", applyOrderEvent)
	metrics, err := prom.New(prometheus.DefaultRegisterer)
	if err != nil {
		return err
	}
	c, err := handler.NewConsumer(handler.Config{Name: name, Concurrency: concurrency, Store: ib, DeadLetters: ib,
		Observer: metrics, Logger: logger}, r, src)
	if err != nil {
		return err
	}
	logger.Info("order-projection running", "broker", broker)
	return c.Run(ctx)
}

// applyOrderEvent counts the event and adds its amount to its order, in
// the inbox's transaction: both happen once, or not at all.
func applyOrderEvent(ctx context.Context, e cloudevents.Event) error {
	id, _ := e.Extensions()["partitionkey"].(string)
	if id == "" {
		return handler.Permanent(fmt.Errorf("event %s has no partitionkey (aggregate id)", e.ID()))
	}
	var data struct {
		Amount json.Number `json:"amount"`
	}
	if err := e.DataAs(&data); err != nil {
		return handler.Permanent(fmt.Errorf("event %s: data: %w", e.ID(), err))
	}
	amount := data.Amount.String()
	if amount == "" {
		amount = "0"
	}
	_, err := inbox.Tx(ctx).Exec(ctx, `INSERT INTO order_projection (aggregate_id, events, total) VALUES ($1, 1, $2::numeric)
ON CONFLICT (aggregate_id) DO UPDATE SET events = order_projection.events + 1, total = order_projection.total + EXCLUDED.total`, id, amount)
	return err
}
