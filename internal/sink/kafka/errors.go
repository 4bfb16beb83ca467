package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

var errMessageTooLarge error = kerr.MessageTooLarge

const messageTooLargeText = "MESSAGE_TOO_LARGE"

// ProduceError is the cause of a PermanentError for an event the brokers
// rejected. It wraps the broker's error (a *kerr.Error when the broker
// answered), so errors.Is(err, kerr.MessageTooLarge) works through it.
type ProduceError struct {
	Topic string
	Err   error
}

func (e *ProduceError) Error() string {
	msg := fmt.Sprintf("topic %q: %v", e.Topic, e.Err)
	if h := hint(e.Err); h != "" {
		msg += "; " + h
	}
	return msg
}

func (e *ProduceError) Unwrap() error { return e.Err }

// hint says what to do about a permanent broker error.
func hint(err error) string {
	switch {
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return "raise the topic's max.message.bytes or set batch_max_bytes below it"
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		return "grant the sink's principal WRITE and DESCRIBE on the topic"
	case errors.Is(err, kerr.ClusterAuthorizationFailed), errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return "grant the sink's principal IDEMPOTENT_WRITE on the cluster (needed before Kafka 3.0)"
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return "create the topic or set create_topics: true"
	case errors.Is(err, kerr.InvalidTopicException):
		return "fix the topic template"
	case errors.Is(err, kerr.PolicyViolation):
		return "the broker's create-topic policy refused the topic settings"
	case errors.Is(err, kerr.InvalidReplicationFactor):
		return "lower replication_factor to at most the number of brokers"
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		return "check the SASL username and password"
	}
	return ""
}

// abandoned reports whether a record failed only because the sink is
// closing: neither acknowledged nor a permanent failure.
func abandoned(err error) bool {
	return errors.Is(err, kgo.ErrClientClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// permanentAdmin reports whether an admin (create/describe/list topics)
// error cannot be fixed by retrying. The broker's own error codes say; a
// request that never got an answer (network, timeout) is transient.
func permanentAdmin(err error) bool {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return !ke.Retriable
	}
	return false
}
