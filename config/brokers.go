package config

import "fmt"

// brokers holds the broker sinks' sections; exactly the one named by the
// sink's type may be set.
type brokers struct{}

func (b brokers) validate(typ string) error {
	return fmt.Errorf("type %q is not a sink type (want file, stdout, kafka, nats or redis)", typ)
}
