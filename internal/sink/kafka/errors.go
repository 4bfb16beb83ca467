package kafka

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/outbox-cdc/outbox-cdc/internal/delivery"
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

// produceError maps franz-go's failure of a record, once, at the boundary.
// franz-go retries every retriable failure itself, without a limit, so what
// reaches a promise is, by Kafka's own error table (kerr), an error retrying
// cannot fix: it is marked permanent, with the topic and a hint. Should a
// retriable one ever arrive, it is left transient and the engine sends the
// record again. A client closing fails records with kgo.ErrClientClosed
// after the engine stopped, which ignores them.
func produceError(topic string, err error) error {
	perr := &ProduceError{Topic: topic, Err: err}
	if kerr.IsRetriable(err) {
		return perr
	}
	return delivery.Permanent(perr)
}

// nonRetriable reports whether the broker answered with an error code that
// Kafka's error table marks non-retriable (kerr), so that retrying an admin
// request (create, describe, list topics) cannot help. A request that never
// got an answer (network, timeout) is retriable.
func nonRetriable(err error) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && !ke.Retriable
}
