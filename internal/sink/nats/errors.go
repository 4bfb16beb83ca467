package nats

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outbox-cdc/outbox-cdc/internal/delivery"
)

// JetStream API error codes the sink tells apart (nats-server errors.json).
const (
	errCodeMessageTooLarge = 10054 // message size exceeds maximum allowed (stream max_msg_size)
	errCodeWrongLastMsgID  = 10070 // wrong last msg ID: the Nats-Expected-Last-Msg-Id chain broke
	errCodeHeaderTooLarge  = 10097 // header size exceeds maximum allowed of 64k
)

// classify maps a failure to publish p, once, at the boundary: it returns
// err marked permanent (delivery.Permanent, for sink.IsPermanent) when
// sending p again cannot help, with what to know about it, and err as it is
// when it is transient.
//
// Permanent: a message larger than the server's max_payload or the stream's
// max_msg_size, a header over 64 KiB, a subject or header the client
// refuses, and a publish permission violation. Everything else is
// transient and retried forever: timeouts, a lost connection, no responders
// (JetStream or the stream leader not ready, e.g. while a server restarts;
// a deleted stream is found out separately), "wrong last msg id" (the
// strict-order chain broke because an earlier message failed), insufficient
// resources and cluster errors.
func (s *Sink) classify(p *entry, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		err = fmt.Errorf("message of %d bytes (payload %d) is larger than the server's max_payload of %d bytes: %w",
			msgSize(&p.msg), len(p.msg.Data), s.nc.MaxPayload(), err)
	case errors.Is(err, nats.ErrBadSubject):
		err = fmt.Errorf("subject %q: %w", p.msg.Subject, err)
	case errors.Is(err, nats.ErrHeadersNotSupported), errors.Is(err, nats.ErrBadHeaderMsg),
		errors.Is(err, nats.ErrInvalidMsg), errors.Is(err, nats.ErrPermissionViolation):
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodeMessageTooLarge || apiErr.ErrorCode == errCodeHeaderTooLarge):
		err = fmt.Errorf("stream %q refused a message of %d bytes: %w", s.cfg.Stream.Name, msgSize(&p.msg), err)
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		// A publish the server refused for lack of permission is dropped
		// without a reply and times out; the -ERR came separately.
		d := s.deniedFor(p)
		if d == nil {
			return err
		}
		err = d.err
	default:
		return err
	}
	return delivery.Permanent(err)
}

// msgSize approximates the bytes m takes on the wire: payload and headers.
func msgSize(m *nats.Msg) int {
	n := len(m.Data)
	if len(m.Header) > 0 {
		n += len("NATS/1.0\r\n\r\n")
		for k, vs := range m.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4
			}
		}
	}
	return n
}
