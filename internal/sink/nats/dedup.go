package nats

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// dupReader is the engine goroutine's state for reading the stored copies
// of duplicates.
type dupReader struct {
	failing bool      // the last read failed; logged once
	retryAt time.Time // no reads before then after a failure
}

// storedLSN returns the commit LSN of the message the stream holds in place
// of a duplicate: seq (the PubAck's sequence) names it, and its pglsn
// attribute (the ce-pglsn header, or the pglsn member of a structured
// payload) gives the LSN. It returns 0 when the LSN cannot be known: seq is
// 0 (the sink found the copies stored by other means), the message is
// gone (deleted, or aged out), it has no pglsn (another publisher's), or it
// cannot be read. A failed read is logged once and reads pause for
// AckTimeout, so a server that does not answer delays acknowledgements by
// at most one AckTimeout per AckTimeout.
//
// Called on the engine goroutine only, for duplicates: one request each.
func (s *Sink) storedLSN(seq uint64) uint64 {
	r := &s.dupRead
	if seq == 0 || s.stream == nil || time.Now().Before(r.retryAt) {
		return 0
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.AckTimeout)
	m, err := s.stream.GetMsg(ctx, seq)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, jetstream.ErrMsgNotFound), s.ctx.Err() != nil:
		return 0
	default:
		r.retryAt = time.Now().Add(s.cfg.AckTimeout)
		if !r.failing {
			r.failing = true
			s.log.Warn("nats sink: cannot read the stored copy of a duplicate, so duplicates from another commit "+
				"cannot be told from resends and count as resends until it works again; "+
				"the sink needs permission to publish to $JS.API.STREAM.MSG.GET.<stream> (or $JS.API.DIRECT.GET.<stream> with allow_direct)",
				"sink", s.opts.Name, "stream", s.cfg.Stream.Name, "seq", seq, "err", err)
		}
		return 0
	}
	if r.failing {
		r.failing = false
		s.log.Info("nats sink: reading stored copies of duplicates again", "sink", s.opts.Name, "stream", s.cfg.Stream.Name)
	}
	return messageLSN(m)
}

// messageLSN returns the pglsn attribute of a stored message of either
// content mode, or 0.
func messageLSN(m *jetstream.RawStreamMsg) uint64 {
	var v string
	if strings.HasPrefix(strings.ToLower(headerValue(m.Header, hdrContentType)), "application/cloudevents") {
		var body struct {
			LSN string `json:"pglsn"`
		}
		if json.Unmarshal(m.Data, &body) != nil {
			return 0
		}
		v = body.LSN
	} else {
		v = headerValue(m.Header, hdrPrefix+sink.LSNExtension)
	}
	lsn, err := event.ParseLSN(v)
	if err != nil {
		return 0
	}
	return lsn
}

// headerValue returns the first value of header name, matched without
// regard to case (NATS header names are case-insensitive, nats.Header is
// not).
func headerValue(h nats.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if len(vs) > 0 && strings.EqualFold(k, name) {
			return vs[0]
		}
	}
	return ""
}
