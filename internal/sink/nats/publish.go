package nats

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher publishes JetStream messages asynchronously and matches the
// server's replies to them, in place of nats.go's PublishMsgAsync (which
// this sink used before): BenchmarkPublish/…/jetstream-async against
// BenchmarkPublish/… shows the difference, about 2.5 µs of client CPU per
// message here. nats.go's version costs more per message than the relay's
// whole decode and encode: a timer per message for the ack timeout, a map
// keyed by a random string token, and encoding/json for every PubAck. Here a
// message's reply subject is the publisher's inbox prefix and a sequence
// number; replies find their message in a map keyed by it; a PubAck is read
// by a small scanner for the two shapes the server sends (JetStream's
// pubAck, with "duplicate" on a duplicate), falling back to encoding/json
// for anything else (errors, domains, future fields); timeouts are found by
// one sweep every quarter of the timeout.
//
// The outcomes are nats.go's, so the sink classifies them as before: a
// PubAck (acked), a *jetstream.APIError, jetstream.ErrNoStreamResponse (503
// no responders), jetstream.ErrInvalidJSAck, jetstream.ErrAsyncPublishTimeout
// after timeout, and nats.ErrDisconnected for every message in flight when
// the connection is lost (its reply could never come).
type publisher struct {
	nc      *nats.Conn
	prefix  string // the reply subjects' prefix: "<inbox>."
	timeout time.Duration
	acked   func(p *entry, seq uint64, dup bool) // the server stored p (seq: the stream sequence)
	failed  func(p *entry, err error)

	sub    *nats.Subscription
	status chan nats.Status

	mu      sync.Mutex
	next    uint64            // the next publish's number
	pending map[uint64]*entry // publish number -> message awaiting its reply
	reply   []byte            // scratch for reply subjects; under mu
	stop    chan struct{}
	done    sync.WaitGroup
}

// newPublisher subscribes to the reply subjects and starts the timeout
// sweep and the watch for lost connections. acked and failed run on
// nats.go's delivery goroutine or the sweep's, never with the publisher's
// lock held; they must not block.
func newPublisher(nc *nats.Conn, timeout time.Duration, acked func(*entry, uint64, bool), failed func(*entry, error)) (*publisher, error) {
	pb := &publisher{
		nc: nc, prefix: nc.NewInbox() + ".", timeout: timeout, acked: acked, failed: failed,
		pending: make(map[uint64]*entry), stop: make(chan struct{}),
	}
	sub, err := nc.Subscribe(pb.prefix+"*", pb.handle)
	if err != nil {
		return nil, err
	}
	// The engine's window bounds the replies awaited; nats.go's default
	// limits would drop replies past 65,536 as a slow consumer.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	pb.sub = sub
	pb.status = nc.StatusChanged(nats.RECONNECTING, nats.CLOSED)
	pb.done.Add(2)
	go pb.sweep()
	go pb.watch()
	return pb, nil
}

// close stops the sweep and the watch. Messages still awaiting a reply stay
// unsettled.
func (pb *publisher) close() {
	pb.mu.Lock()
	select {
	case <-pb.stop:
	default:
		close(pb.stop)
	}
	pb.mu.Unlock()
	pb.nc.RemoveStatusListener(pb.status)
	pb.done.Wait()
}

// publish sends p's message with a reply subject of its own. An error means
// it was not sent (nats.go's error: disconnected, max payload, closed).
func (pb *publisher) publish(p *entry) error {
	pb.mu.Lock()
	n := pb.next
	pb.next++
	pb.reply = strconv.AppendUint(append(pb.reply[:0], pb.prefix...), n, 36)
	p.msg.Reply = string(pb.reply)
	p.sent = time.Now()
	pb.pending[n] = p
	pb.mu.Unlock()
	if err := pb.nc.PublishMsg(&p.msg); err != nil {
		pb.mu.Lock()
		delete(pb.pending, n)
		pb.mu.Unlock()
		return err
	}
	return nil
}

// handle is the reply subscription's handler.
func (pb *publisher) handle(m *nats.Msg) {
	if len(m.Subject) <= len(pb.prefix) {
		return
	}
	n, err := strconv.ParseUint(m.Subject[len(pb.prefix):], 36, 64)
	if err != nil {
		return
	}
	pb.mu.Lock()
	p := pb.pending[n]
	delete(pb.pending, n)
	pb.mu.Unlock()
	if p == nil {
		return // timed out or failed on a disconnect before
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		pb.failed(p, jetstream.ErrNoStreamResponse)
		return
	}
	if seq, dup, ok := scanPubAck(m.Data); ok {
		pb.acked(p, seq, dup)
		return
	}
	var r struct {
		Error     *jetstream.APIError `json:"error"`
		Stream    string              `json:"stream"`
		Sequence  uint64              `json:"seq"`
		Duplicate bool                `json:"duplicate"`
	}
	switch {
	case json.Unmarshal(m.Data, &r) != nil:
		pb.failed(p, jetstream.ErrInvalidJSAck)
	case r.Error != nil:
		pb.failed(p, r.Error)
	case r.Stream == "":
		pb.failed(p, jetstream.ErrInvalidJSAck)
	default:
		pb.acked(p, r.Sequence, r.Duplicate)
	}
}

// scanPubAck reads the PubAck nats-server writes for a stored message,
// {"stream":"S", "seq":N} or, for a duplicate, {"stream":"S",
// "seq":N,"duplicate": true}: the stream sequence and the duplicate flag.
// ok is false for any other shape (an error, a domain, a counter's value),
// which encoding/json then reads.
func scanPubAck(b []byte) (seq uint64, dup, ok bool) {
	const head = `{"stream":"`
	if !bytes.HasPrefix(b, []byte(head)) || bytes.Contains(b, []byte(`"error"`)) || bytes.Contains(b, []byte(`"domain"`)) {
		return 0, false, false
	}
	end := bytes.IndexByte(b[len(head):], '"') // stream names hold no quote or backslash
	if end <= 0 || bytes.IndexByte(b[len(head):len(head)+end], '\\') >= 0 {
		return 0, false, false
	}
	rest := bytes.TrimLeft(b[len(head)+end+1:], " ")
	if !bytes.HasPrefix(rest, []byte(`,`)) {
		return 0, false, false
	}
	rest = bytes.TrimLeft(rest[1:], " ")
	if !bytes.HasPrefix(rest, []byte(`"seq":`)) {
		return 0, false, false
	}
	rest = bytes.TrimLeft(rest[len(`"seq":`):], " ")
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	seq, err := strconv.ParseUint(string(rest[:i]), 10, 64)
	if err != nil {
		return 0, false, false
	}
	switch tail := bytes.TrimSpace(rest[i:]); {
	case bytes.Equal(tail, []byte(`}`)):
		return seq, false, true
	case bytes.HasPrefix(tail, []byte(`,"duplicate":`)):
		if bytes.Equal(bytes.TrimSpace(tail[len(`,"duplicate":`):]), []byte(`true}`)) {
			return seq, true, true
		}
	}
	return 0, false, false
}

// sweep fails the messages whose reply did not come within the timeout.
func (pb *publisher) sweep() {
	defer pb.done.Done()
	t := time.NewTicker(max(pb.timeout/4, 10*time.Millisecond))
	defer t.Stop()
	var scratch []*entry
	for {
		select {
		case <-pb.stop:
			return
		case now := <-t.C:
			scratch = pb.fail(scratch, jetstream.ErrAsyncPublishTimeout, func(p *entry) bool { return now.Sub(p.sent) >= pb.timeout })
		}
	}
}

// watch fails every message in flight when the connection is lost: the
// server answers on the connection a message came on, so their replies
// cannot come. nats.go's async publish did the same.
func (pb *publisher) watch() {
	defer pb.done.Done()
	var scratch []*entry
	for {
		select {
		case <-pb.stop:
			return
		case st, ok := <-pb.status:
			if !ok || st == nats.CLOSED {
				return
			}
			scratch = pb.fail(scratch, nats.ErrDisconnected, func(*entry) bool { return true })
		}
	}
}

// fail takes the messages awaiting a reply for which match holds out of
// the pending set and fails them with err, outside the lock. It returns
// scratch, emptied, for the next call.
func (pb *publisher) fail(scratch []*entry, err error, match func(*entry) bool) []*entry {
	pb.mu.Lock()
	for n, p := range pb.pending {
		if match(p) {
			delete(pb.pending, n)
			scratch = append(scratch, p)
		}
	}
	pb.mu.Unlock()
	for _, p := range scratch {
		pb.failed(p, err)
	}
	clear(scratch)
	return scratch[:0]
}
