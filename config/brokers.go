package config

import (
	"errors"
	"fmt"

	"github.com/outbox-cdc/outbox-cdc/sink/kafka"
	"github.com/outbox-cdc/outbox-cdc/sink/nats"
	"github.com/outbox-cdc/outbox-cdc/sink/redis"
)

// brokers holds the broker sinks' sections; exactly the one named by the
// sink's type may be set.
type brokers struct {
	Kafka *kafka.Config `yaml:"kafka"`
	NATS  *nats.Config  `yaml:"nats"`
	Redis *redis.Config `yaml:"redis"`
}

func (b brokers) validate(typ string) error {
	set := map[string]bool{"kafka": b.Kafka != nil, "nats": b.NATS != nil, "redis": b.Redis != nil}
	for name, ok := range set {
		if ok && name != typ {
			return fmt.Errorf("a %s section on a %s sink", name, typ)
		}
	}
	switch typ {
	case "kafka":
		if b.Kafka == nil {
			return errors.New("type kafka needs a kafka section (brokers, topic, ...)")
		}
		return b.Kafka.Validate()
	case "nats":
		if b.NATS == nil {
			return errors.New("type nats needs a nats section (url, subject, stream, ...)")
		}
		return b.NATS.Validate()
	case "redis":
		if b.Redis == nil {
			return errors.New("type redis needs a redis section (address, stream, ...)")
		}
		return b.Redis.Validate()
	case "":
		return errors.New("type is required (file, stdout, kafka, nats or redis)")
	}
	return fmt.Errorf("type %q is not a sink type (want file, stdout, kafka, nats or redis)", typ)
}
