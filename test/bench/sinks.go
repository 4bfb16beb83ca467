package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

// servers started for the bench, once.
var (
	kafka *harness.Kafka
	nats  *harness.NATS
	redis *harness.Redis
)

// sinkYAML returns the sinks[] entry for kind, starting its server on first
// use, and a cleanup for what the run left (files).
func (b *bench) sinkYAML(ctx context.Context, kind, run string) (string, func(), error) {
	tag := fmt.Sprintf("%s-%d", run, time.Now().UnixNano())
	switch kind {
	case "file":
		out := filepath.Join(b.work, "events-"+tag+".jsonl")
		return fmt.Sprintf("  - {name: file, type: file, path: %q}", out), func() { os.Remove(out) }, nil
	case "kafka":
		if kafka == nil {
			k, err := harness.StartKafka(ctx, harness.KafkaOptions{HeapMB: 768})
			if err != nil {
				return "", nil, err
			}
			kafka = k
			b.cleanup = append(b.cleanup, func() { k.Close() })
		}
		return fmt.Sprintf("  - {name: kafka, type: kafka, kafka: {brokers: [%q], topic: bench-%s, create_topics: true, partitions: 4}}",
			kafka.Addr(), tag), func() {}, nil
	case "nats":
		if nats == nil {
			n, err := harness.StartNATS(ctx, harness.NATSOptions{})
			if err != nil {
				return "", nil, err
			}
			nats = n
			b.cleanup = append(b.cleanup, func() { n.Close() })
		}
		name := "BENCH" + strings.ReplaceAll(tag, "-", "_")
		return fmt.Sprintf("  - {name: nats, type: nats, nats: {url: %q, subject: \"%s.{{.AggregateType}}\", stream: {name: %s, create: true, subjects: [\"%s.>\"]}}}",
			nats.URL(), strings.ToLower(name), name, strings.ToLower(name)), func() {}, nil
	case "redis":
		if redis == nil {
			r, err := harness.StartRedis(ctx, harness.RedisOptions{})
			if err != nil {
				return "", nil, err
			}
			redis = r
			b.cleanup = append(b.cleanup, func() { r.Close() })
		}
		return fmt.Sprintf("  - {name: redis, type: redis, redis: {address: %q, stream: \"bench:%s\"}}", redis.Addr(), tag), func() {}, nil
	}
	return "", nil, fmt.Errorf("unknown sink %q", kind)
}

// brokerPid returns the process id of kind's broker, started for the bench,
// or 0 (the file sink, or a broker not started yet).
func brokerPid(kind string) int {
	switch {
	case kind == "kafka" && kafka != nil:
		return kafka.Pid()
	case kind == "nats" && nats != nil:
		return nats.Pid()
	case kind == "redis" && redis != nil:
		return redis.Pid()
	}
	return 0
}
