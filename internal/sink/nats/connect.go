package nats

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/outbox-cdc/outbox-cdc/internal/delivery"
)

// Connection settings that are not worth a configuration key.
const (
	// pingInterval and maxPingsOut find a dead connection (a server gone
	// without a TCP reset) within about a minute instead of nats.go's
	// default of several minutes.
	pingInterval = 20 * time.Second
	maxPingsOut  = 3
)

// natsOptions returns the client options for s.cfg. It reads the NKey seed
// and TLS files, so their errors surface here.
func (s *Sink) natsOptions() ([]nats.Option, error) {
	c := s.cfg
	opts := []nats.Option{
		nats.Name("outbox-cdc " + s.opts.Name),
		nats.Timeout(c.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(c.ReconnectWait),
		// No reconnect buffer: a publish while disconnected fails at once
		// and is resent, in order, after the reconnection, instead of being
		// flushed later behind the sink's back.
		nats.ReconnectBufSize(-1),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.DisconnectErrHandler(s.onDisconnect),
		nats.ReconnectHandler(s.onReconnect),
		nats.ErrorHandler(s.onAsyncError),
	}
	switch {
	case c.CredentialsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredentialsFile))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey_seed_file %s: %w", c.NKeySeedFile, err)
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	if c.TLS.On() {
		tc, err := c.TLS.Build("")
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// connectError explains a failed nats.Connect. It names the URL without user
// info and never includes a password or token.
func (s *Sink) connectError(err error) error {
	hint := "check url and that the server is running and reachable"
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired):
		hint = "check the credentials (user/password, token, nkey_seed_file or credentials_file)"
	case errors.As(err, &certErr), errors.Is(err, nats.ErrSecureConnRequired),
		errors.Is(err, nats.ErrSecureConnWanted), strings.Contains(err.Error(), "tls:"),
		strings.Contains(err.Error(), "x509:"):
		hint = "check the tls settings and the server's TLS configuration"
	}
	return fmt.Errorf("sink %s: cannot connect to NATS at %s (connect_timeout %v): %w; %s",
		s.opts.Name, redactURL(s.cfg.URL), s.cfg.ConnectTimeout, err, hint)
}

func (s *Sink) closing() bool {
	select {
	case <-s.ctx.Done():
		return true
	default:
		return false
	}
}

func (s *Sink) onDisconnect(_ *nats.Conn, err error) {
	if s.closing() {
		return
	}
	args := []any{"sink", s.opts.Name, "url", redactURL(s.cfg.URL)}
	if err != nil {
		args = append(args, "err", err)
	}
	s.log.Warn("nats sink disconnected; reconnecting", args...)
}

func (s *Sink) onReconnect(nc *nats.Conn) {
	s.log.Info("nats sink reconnected", "sink", s.opts.Name, "url", nc.ConnectedUrlRedacted())
	signal(s.reconnected)
}

// denial is a publish permission violation the server reported: every
// message on subject is dropped, until a message on it is acknowledged
// again.
type denial struct {
	subject string
	err     error
}

func (s *Sink) onAsyncError(_ *nats.Conn, _ *nats.Subscription, err error) {
	if err == nil || s.closing() {
		return
	}
	if errors.Is(err, nats.ErrPermissionViolation) {
		// "... Permissions Violation for Publish to "subject"": the server
		// dropped the message and will never acknowledge it.
		msg := err.Error()
		if _, rest, ok := strings.Cut(msg, "Publish to \""); ok {
			if subj, _, ok := strings.Cut(rest, "\""); ok {
				old := s.deny.Swap(&denial{subject: subj, err: err})
				if old == nil || old.subject != subj {
					s.log.Error("nats sink: publish permission denied", "sink", s.opts.Name, "subject", subj)
				}
				// The server will never acknowledge them: fail the
				// messages on that subject now rather than at AckTimeout.
				s.eng.FailSent(func(p *entry) bool { return p.msg.Subject == subj }, delivery.Permanent(err))
				return
			}
		}
	}
	msg := err.Error()
	if old := s.lastAsyncErr.Swap(&msg); old == nil || *old != msg {
		s.log.Warn("nats sink: asynchronous error from the server", "sink", s.opts.Name, "err", err)
	}
}

// signal makes a non-blocking send on a channel of capacity 1.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
