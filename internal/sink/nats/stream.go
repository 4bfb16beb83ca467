package nats

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// setupStream finds the configured stream, creating it when allowed, and
// checks that it can take the subjects and acknowledges publishes. It sets
// s.filters and s.stream.
func (s *Sink) setupStream(ctx context.Context) error {
	name := s.cfg.Stream.Name
	st, err := s.js.Stream(ctx, name)
	switch {
	case err == nil:
	case errors.Is(err, jetstream.ErrStreamNotFound) && s.cfg.Stream.Create:
		if st, err = s.createStream(ctx); err != nil {
			return err
		}
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("stream %q does not exist: create it (e.g. nats stream add %s --subjects '%s') or set stream.create: true",
			name, name, s.suggestSubjects())
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("JetStream is not enabled for this account on the server (start nats-server with -js): %w", err)
	default:
		return fmt.Errorf("cannot look up stream %q: %w", name, err)
	}
	cfg := st.CachedInfo().Config
	switch {
	case cfg.NoAck:
		return fmt.Errorf("stream %q has no_ack set: the sink needs the server's acknowledgements", name)
	case cfg.Sealed:
		return fmt.Errorf("stream %q is sealed and takes no messages", name)
	case cfg.Mirror != nil:
		return fmt.Errorf("stream %q is a mirror and takes no published messages", name)
	}
	if !templateCovered(s.subj, cfg.Subjects) {
		return fmt.Errorf("stream %q has subjects %q, which do not cover subject %q: add %q to the stream's subjects or change subject",
			name, cfg.Subjects, s.subj.String(), s.suggestSubjects())
	}
	s.filters = cfg.Subjects
	s.stream = st
	return nil
}

// createStream creates the stream from the configuration. A stream created
// concurrently by someone else is used as is.
func (s *Sink) createStream(ctx context.Context) (jetstream.Stream, error) {
	c := s.cfg.Stream
	subjects := c.Subjects
	if len(subjects) == 0 {
		var err error
		if subjects, err = defaultStreamSubjects(s.subj); err != nil {
			return nil, err
		}
	}
	storage := jetstream.FileStorage
	if c.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	st, err := s.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        c.Name,
		Description: "CloudEvents from the outbox-cdc sink " + s.opts.Name,
		Subjects:    subjects,
		Duplicates:  c.DuplicateWindow,
		Replicas:    c.Replicas,
		MaxAge:      c.MaxAge,
		Storage:     storage,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		st, err = s.js.Stream(ctx, c.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot create stream %q with subjects %q: %w", c.Name, subjects, err)
	}
	s.log.Info("nats sink created stream", "sink", s.opts.Name, "stream", c.Name, "subjects", subjects,
		"duplicate_window", c.DuplicateWindow, "replicas", c.Replicas, "storage", c.Storage)
	return st, nil
}

// refreshFilters reloads the stream's subjects, for a subject that did not
// match them: the stream may have been given more subjects since startup.
func (s *Sink) refreshFilters() {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.AckTimeout)
	defer cancel()
	if st, err := s.js.Stream(ctx, s.cfg.Stream.Name); err == nil {
		s.filters = st.CachedInfo().Config.Subjects
	}
}

// streamGone reports, after a publish found no responders, whether the
// stream was deleted. With stream.create it is created again and false is
// returned. Any failure to find out counts as transient (false).
func (s *Sink) streamGone() (bool, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.AckTimeout)
	defer cancel()
	_, err := s.js.Stream(ctx, s.cfg.Stream.Name)
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, nil
	}
	if !s.cfg.Stream.Create {
		return true, fmt.Errorf("stream %q no longer exists: %w", s.cfg.Stream.Name, err)
	}
	s.log.Warn("nats sink: stream was deleted; creating it again", "sink", s.opts.Name, "stream", s.cfg.Stream.Name)
	if _, err := s.createStream(ctx); err != nil {
		s.log.Warn("nats sink: cannot create the stream again", "sink", s.opts.Name, "err", err)
	}
	return false, nil
}

// suggestSubjects names stream subjects that would cover the subject
// template, for error messages.
func (s *Sink) suggestSubjects() string {
	if d, err := defaultStreamSubjects(s.subj); err == nil {
		return d[0]
	}
	return s.subj.String()
}
