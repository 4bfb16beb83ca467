package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
)

// topicInfo is what the sink knows about a topic it produces to.
type topicInfo struct {
	name     string
	maxBatch int32 // record batch cap, from max.message.bytes and batch_max_bytes
}

// topic returns what is known about name, or nil.
func (s *Sink) topic(name string) *topicInfo {
	if v, ok := s.topics.Load(name); ok {
		return v.(*topicInfo)
	}
	return nil
}

// batchMaxFor is franz-go's ProducerBatchMaxBytesFn. Topics are prepared
// before their first record is produced, so the lookup normally hits.
func (s *Sink) batchMaxFor(name string) int32 {
	if ti := s.topic(name); ti != nil {
		return ti.maxBatch
	}
	return s.defaultBatchMax()
}

func (s *Sink) defaultBatchMax() int32 {
	if s.cfg.BatchMaxBytes > 0 {
		return s.cfg.BatchMaxBytes
	}
	return DefaultBatchMaxBytes
}

// prepareTopicOnce creates topic name (CreateTopics) or checks that it
// exists, then reads its max.message.bytes. It makes one attempt bounded by
// ConnectTimeout. The error is permanent when nonRetriable says so or
// when it is a *TopicError.
func (s *Sink) prepareTopicOnce(ctx context.Context, name string) (*topicInfo, error) {
	if err := validTopicName(name); err != nil {
		return nil, &TopicError{Topic: name, Err: fmt.Errorf("%w: %v", kerr.InvalidTopicException, err)}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()

	if s.cfg.CreateTopics {
		partitions, rf := s.cfg.Partitions, s.cfg.ReplicationFactor
		if partitions == 0 {
			partitions = -1
		}
		if rf == 0 {
			rf = -1
		}
		var configs map[string]*string
		if len(s.cfg.TopicConfig) > 0 {
			configs = make(map[string]*string, len(s.cfg.TopicConfig))
			for k, v := range s.cfg.TopicConfig {
				configs[k] = &v
			}
		}
		resp, err := s.admin.CreateTopic(ctx, partitions, rf, configs, name)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil:
			s.opts.Logger.Info("kafka topic created", "sink", s.opts.Name, "topic", name, "partitions", resp.NumPartitions, "replication_factor", resp.ReplicationFactor)
		case errors.Is(err, kerr.TopicAlreadyExists):
		case nonRetriable(err):
			return nil, &TopicError{Topic: name, Err: err, Op: "create"}
		default:
			return nil, err
		}
	} else {
		details, err := s.admin.ListTopics(ctx, name)
		if err != nil {
			return nil, err
		}
		td, ok := details[name]
		switch {
		case !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition):
			return nil, &TopicError{Topic: name, Err: kerr.UnknownTopicOrPartition, Op: "find"}
		case td.Err != nil && nonRetriable(td.Err):
			return nil, &TopicError{Topic: name, Err: td.Err, Op: "find"}
		case td.Err != nil:
			return nil, td.Err
		}
	}

	ti := &topicInfo{name: name, maxBatch: s.defaultBatchMax()}
	if mmb, ok := s.maxMessageBytes(ctx, name); ok {
		ti.maxBatch = min(max(mmb, minBatchMaxBytes), maxBatchMaxBytes)
		if s.cfg.BatchMaxBytes > 0 {
			ti.maxBatch = min(ti.maxBatch, s.cfg.BatchMaxBytes)
		}
	}
	return ti, nil
}

// maxMessageBytes reads the topic's effective max.message.bytes. Brokers
// that deny DescribeConfigs leave the configured default in force.
func (s *Sink) maxMessageBytes(ctx context.Context, name string) (int32, bool) {
	rcs, err := s.admin.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return 0, false
	}
	rc, err := rcs.On(name, nil)
	if err != nil || rc.Err != nil {
		return 0, false
	}
	for _, c := range rc.Configs {
		if c.Key == "max.message.bytes" && c.Value != nil {
			n, err := strconv.ParseInt(*c.Value, 10, 32)
			if err == nil && n > 0 {
				return int32(n), true
			}
		}
	}
	return 0, false
}

// prepareTopic is prepareTopicOnce retried with backoff while the brokers
// cannot answer, until ctx is done. It returns a *TopicError for a topic
// that cannot be used, or ctx's error.
func (s *Sink) prepareTopic(ctx context.Context, name string) (*topicInfo, error) {
	for attempt := 1; ; attempt++ {
		ti, err := s.prepareTopicOnce(ctx, name)
		if err == nil {
			s.topics.Store(name, ti)
			return ti, nil
		}
		var te *TopicError
		if errors.As(err, &te) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.health.Retried(err)
		if err := s.cfg.Retry.Sleep(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// TopicError says a topic cannot be used: it does not exist (and
// create_topics is off), its name is invalid, or the broker refused to
// create or describe it. It wraps the broker's error.
type TopicError struct {
	Topic string
	Op    string // "create" or "find"; "" for a name refused locally
	Err   error
}

func (e *TopicError) Error() string {
	var msg string
	switch {
	case errors.Is(e.Err, kerr.UnknownTopicOrPartition) && e.Op == "find":
		msg = fmt.Sprintf("topic %q does not exist", e.Topic)
	case e.Op != "":
		msg = fmt.Sprintf("cannot %s topic %q: %v", e.Op, e.Topic, e.Err)
	default:
		msg = fmt.Sprintf("topic %q: %v", e.Topic, e.Err)
	}
	if h := hint(e.Err); h != "" {
		msg += "; " + h
	}
	return msg
}

func (e *TopicError) Unwrap() error { return e.Err }
