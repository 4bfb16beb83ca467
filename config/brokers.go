package config

import (
	"errors"
	"fmt"

	"github.com/outbox-cdc/outbox-cdc/sink/kafka"
)

// brokers holds the broker sinks' sections; exactly the one named by the
// sink's type may be set.
type brokers struct {
	Kafka *kafka.Config `yaml:"kafka"`
}

func (b brokers) validate(typ string) error {
	set := map[string]bool{"kafka": b.Kafka != nil}
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
	case "":
		return errors.New("type is required (file, stdout, kafka, nats or redis)")
	}
	return fmt.Errorf("type %q is not a sink type (want file, stdout, kafka, nats or redis)", typ)
}
