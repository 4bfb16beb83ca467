package test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Acceptance: fan-out to two sinks, one refusing everything while outbox-cdc
// is killed and restarted twice: the healthy sink is sent nothing again that
// it had acknowledged; the other receives everything after it recovers.
func TestPerSinkProgress(t *testing.T) {
	rk := redisBroker(t).(*redisKit)
	rc := goredis.NewClient(&goredis.Options{Addr: rk.r.Addr()})
	defer rc.Close()
	ctx := context.Background()
	e := newEnv(t, "")
	writeFile(t, e.cfgPath, strings.Replace(readFile(t, e.cfgPath), "sinks:\n", "sinks:\n"+rk.sinkYAML("redis")+"\n", 1))

	// The redis sink is "down": Redis refuses writes (out of memory).
	if err := rc.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	defer rc.ConfigSet(ctx, "maxmemory", "0")

	rng := rand.New(rand.NewPCG(12, 12))
	next := make([]int, 10)
	total := 0
	for round := 0; round < 3; round++ {
		p := e.start()
		if err := produceFrom(ctx, e, next, 500, 50, 0, rng); err != nil {
			t.Fatal(err)
		}
		total += 500
		waitFor(t, 30*time.Second, "the file sink to have every event", func() bool { return len(uniqueIDs(e.readEvents())) >= total })
		time.Sleep(1500 * time.Millisecond) // progress is saved every second
		if round < 2 {
			p.kill()
			waitFor(t, 10*time.Second, "slot inactive", func() bool { _, a := e.slot(); return !a })
			continue
		}
		// Redis recovers: it gets everything, the file sink nothing twice.
		if err := rc.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "redis to have every event", func() bool { return len(uniqueIDs(toDelivered(t, rk.readAll(t)))) >= total })
		end := e.currentLSN()
		waitFor(t, 30*time.Second, "the slot to catch up", func() bool { c, _ := e.slot(); return c >= end })
		p.stop(t)
	}
	evs := e.readEvents()
	if len(evs) != total {
		t.Fatalf("the healthy file sink has %d lines for %d events: it was sent again what it had acknowledged", len(evs), total)
	}
	checkDelivery(t, evs, total)
	checkDelivery(t, toDelivered(t, rk.readAll(t)), total)
}
