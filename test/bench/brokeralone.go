package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"syscall"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"
	"github.com/synadia-io/orbit.go/jetstreamext"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The broker-alone throughput probes: each broker taking *events events
// from one client in the bench's process, without PostgreSQL and without
// outbox-cdc, connected and with the messages built before the clock
// starts, with the
// guarantees and defaults the sink uses. They show the ceiling a broker
// sets on this machine, and its CPU per event, so a reader of the
// throughput table can tell the broker's share from the relay's. The
// relay's figures are lower than these for a reason of their own too:
// PostgreSQL's walsender takes most of a core beside them.

// aloneResult is one probe run.
type aloneResult struct {
	secs   float64
	broker float64 // broker process CPU seconds
	client float64 // this process's CPU seconds (the client library)
}

// selfCPU returns this process's user+system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// aloneProbe prepares one run of a probe for n events: it connects,
// creates the topic or stream and builds the messages, and returns send,
// which the bench times, and done, which releases what it holds.
type aloneProbe func(ctx context.Context, n int) (send func() error, done func(), err error)

// timeAlone prepares a run of probe, then times its send and measures the
// broker pid's CPU and this process's over it.
func timeAlone(ctx context.Context, pid, n int, probe aloneProbe) (aloneResult, error) {
	send, done, err := probe(ctx, n)
	if err != nil {
		return aloneResult{}, err
	}
	defer done()
	b0, _, _ := procCPU(pid)
	c0, t0 := selfCPU(), time.Now()
	if err := send(); err != nil {
		return aloneResult{}, err
	}
	secs, c1 := time.Since(t0).Seconds(), selfCPU()
	b1, _, _ := procCPU(pid)
	return aloneResult{secs: secs, broker: b1 - b0, client: c1 - c0}, nil
}

// aloneValue is a payload like the relay's events' data.
var aloneValue = []byte(`{"seq":12345,"order_id":"0190d3f2-6c1e-7a42-9c1b-1f2e3d4c5b6a","amount":"99.95"}`)

// brokersAlone runs each probe *runs times for the brokers in sinks (each
// started already by the throughput run) and prints medians.
func (b *bench) brokersAlone(ctx context.Context, sinks []string) error {
	type probe struct {
		name string
		pid  int
		run  aloneProbe
	}
	var probes []probe
	for _, k := range sinks {
		switch {
		case k == "kafka" && kafka != nil:
			probes = append(probes, probe{"kafka (franz-go, the sink's defaults)", kafka.Pid(), kafkaThroughputAlone})
		case k == "nats" && nats != nil:
			probes = append(probes,
				probe{"nats (nats.go async publish)", nats.Pid(), natsAsyncAlone},
				probe{"nats (fast batch, no chain)", nats.Pid(), natsFastBatchAlone})
		case k == "redis" && redis != nil:
			probes = append(probes, probe{"redis (MULTI/EXEC rounds)", redis.Pid(), redisAlone})
		}
	}
	if len(probes) == 0 {
		return nil
	}
	fmt.Printf("%-40s %12s %16s %16s\n", "broker alone (median)", "events/s", "broker µs/event", "client µs/event")
	n := float64(*events)
	for _, p := range probes {
		var rs []aloneResult
		for i := 0; i < *runs; i++ {
			r, err := timeAlone(ctx, p.pid, *events, p.run)
			if err != nil {
				return fmt.Errorf("broker alone: %s: %w", p.name, err)
			}
			rs = append(rs, r)
		}
		fmt.Printf("%-40s %12.0f %16.2f %16.2f\n", p.name, n/median(rs, func(r aloneResult) float64 { return r.secs }),
			median(rs, func(r aloneResult) float64 { return r.broker })/n*1e6, median(rs, func(r aloneResult) float64 { return r.client })/n*1e6)
	}
	fmt.Println()
	return nil
}

// kafkaThroughputAlone produces n records to a new 4-partition topic with
// the Kafka sink's defaults (acks=all, idempotent, lz4, linger 2ms, keys
// over 50 values) and waits for every acknowledgement.
func kafkaThroughputAlone(ctx context.Context, n int) (func() error, func(), error) {
	cl, err := aloneKafka(ctx, fmt.Sprintf("bench-alone-%d", time.Now().UnixNano()), kgo.MaxBufferedRecords(4096+1024))
	if err != nil {
		return nil, nil, err
	}
	recs := make([]kgo.Record, n)
	for i := range recs {
		recs[i] = kgo.Record{Key: fmt.Appendf(nil, "a%d", i%50), Value: aloneValue,
			Headers: []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: strconv.AppendInt(nil, int64(i), 10)},
				{Key: "ce_source", Value: []byte("/bench")}, {Key: "ce_type", Value: []byte("bench.order")},
				{Key: "ce_time", Value: []byte("2026-11-30T10:00:00.000000Z")}, {Key: "content-type", Value: []byte("application/json")}}}
	}
	send := func() error {
		var mu sync.Mutex
		var bad error
		for i := range recs {
			cl.Produce(ctx, &recs[i], func(_ *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil && bad == nil {
					bad = err
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		return bad
	}
	return send, cl.Close, nil
}

// natsMsgs builds n messages as the NATS sink does by default (structured
// mode): the CloudEvent as a JSON body, its content type, Nats-Msg-Id and,
// when chain is set, the Nats-Expected-Last-Msg-Id naming the message
// before (the sink's strict order).
func natsMsgs(subject string, n int, chain bool) []*natsgo.Msg {
	msgs := make([]*natsgo.Msg, n)
	prev := ""
	for i := range msgs {
		id := "/bench/" + strconv.Itoa(i)
		body := fmt.Appendf(nil, `{"specversion":"1.0","id":"%d","source":"/bench","type":"bench.order",`+
			`"time":"2026-11-30T10:00:00.000000Z","datacontenttype":"application/json","partitionkey":"a%d","data":%s}`, i, i%50, aloneValue)
		m := &natsgo.Msg{Subject: subject, Data: body, Header: natsgo.Header{
			"content-type": {"application/cloudevents+json"}, jetstream.MsgIDHeader: {id},
		}}
		if chain && prev != "" {
			m.Header[jetstream.ExpectedLastMsgIDHeader] = []string{prev}
		}
		msgs[i], prev = m, id
	}
	return msgs
}

// natsStream connects and creates a new stream with the sink's defaults
// (file storage, 2-minute duplicate window) and fast batches allowed.
func natsStream(ctx context.Context) (*natsgo.Conn, jetstream.JetStream, string, error) {
	nc, err := natsgo.Connect(nats.URL())
	if err != nil {
		return nil, nil, "", err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		nc.Close()
		return nil, nil, "", err
	}
	name := fmt.Sprintf("ALONE%d", time.Now().UnixNano())
	subject := "alone" + name[5:] + ".order"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute, AllowBatchPublish: true}); err != nil {
		nc.Close()
		return nil, nil, "", err
	}
	return nc, js, subject, nil
}

// natsAsyncAlone publishes n messages the way the sink does, through
// nats.go's PublishMsgAsync (the sink has a leaner publisher of its own):
// asynchronously, 4096 at most awaiting their PubAck, chained in strict
// order.
func natsAsyncAlone(ctx context.Context, n int) (func() error, func(), error) {
	nc, js, subject, err := natsStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	msgs := natsMsgs(subject, n, true)
	futs := make([]jetstream.PubAckFuture, 0, n)
	send := func() error {
		for _, m := range msgs {
			f, err := js.PublishMsgAsync(m, jetstream.WithRetryAttempts(0))
			if err != nil {
				return err
			}
			futs = append(futs, f)
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			return errors.New("no PubAck for a minute")
		}
		for _, f := range futs {
			select {
			case err := <-f.Err():
				return err
			default:
			}
		}
		return nil
	}
	return send, nc.Close, nil
}

// natsFastBatchAlone publishes n messages as one fast-ingest batch (ADR-50,
// nats-server 2.14 and later), acknowledged by flow-control acks every
// 1,000 messages, at most 4 awaited; in its "gap: fail" mode the server
// keeps the batch in order itself, so the messages carry no
// Nats-Expected-Last-Msg-Id.
func natsFastBatchAlone(ctx context.Context, n int) (func() error, func(), error) {
	nc, js, subject, err := natsStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	msgs := natsMsgs(subject, n, false)
	fp, err := jetstreamext.NewFastPublisher(js, jetstreamext.FastPublishFlowControl{Flow: 1000, MaxOutstandingAcks: 4, AckTimeout: time.Minute})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	send := func() error {
		for _, m := range msgs[:n-1] {
			if _, err := fp.AddMsg(m); err != nil {
				return err
			}
		}
		ack, err := fp.CommitMsg(ctx, msgs[n-1])
		if err != nil {
			return err
		}
		if ack.BatchSize != uint64(n) {
			return fmt.Errorf("fast batch committed %d of %d messages", ack.BatchSize, n)
		}
		return nil
	}
	return send, nc.Close, nil
}

// redisAlone adds n entries to a new stream as the sink does in its
// "entryid" mode (the mode it takes on Redis before 8.6): rounds of 1,024
// XADDs with explicit ids in one MULTI/EXEC each, one round at a time, the
// CloudEvents attributes as fields.
func redisAlone(ctx context.Context, n int) (func() error, func(), error) {
	c := goredis.NewClient(&goredis.Options{Addr: redis.Addr()})
	if err := c.Ping(ctx).Err(); err != nil { // connected before the clock starts
		c.Close()
		return nil, nil, err
	}
	stream := fmt.Sprintf("bench:alone:%d", time.Now().UnixNano())
	args := make([]goredis.XAddArgs, n)
	for i := range args {
		args[i] = goredis.XAddArgs{Stream: stream, ID: "1-" + strconv.Itoa(i+1), Values: []any{
			"specversion", "1.0", "id", strconv.Itoa(i), "source", "/bench", "type", "bench.order",
			"time", "2026-11-30T10:00:00.000000Z", "datacontenttype", "application/json", "partitionkey", "a" + strconv.Itoa(i%50),
			"data", aloneValue}}
	}
	send := func() error {
		for i := 0; i < n; i += 1024 {
			round := args[i:min(n, i+1024)]
			cmds, err := c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				for j := range round {
					p.XAdd(ctx, &round[j])
				}
				return nil
			})
			if err != nil {
				return err
			}
			if len(cmds) != len(round) {
				return fmt.Errorf("%d replies for %d XADDs", len(cmds), len(round))
			}
		}
		return nil
	}
	return send, func() { c.Close() }, nil
}
