package outboxcdc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	outboxcdc "github.com/outbox-cdc/outbox-cdc"
	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/event"
	"github.com/outbox-cdc/outbox-cdc/sink"
)

// handlerSink is a sink of the embedding program's own: it hands each event
// to a function and acknowledges it once the function returned.
type handlerSink struct {
	opts   sink.Options
	handle func(context.Context, *event.Event) error
}

// Publish handles the events in order. An error it returns stops outbox-cdc
// with that error: the slot stays before the event, which comes again at the
// next start.
func (h *handlerSink) Publish(ctx context.Context, events []*event.Event) error {
	for _, e := range events {
		if err := h.handle(ctx, e); err != nil {
			return fmt.Errorf("handling event %s: %w", e.ID, err)
		}
		h.opts.Ack(e) // exactly once per event, after it is safe
	}
	return nil
}

func (h *handlerSink) Flush(context.Context) error { return nil }
func (h *handlerSink) Close() error                { return nil }

// Embedding outbox-cdc: the configured sinks plus one in-process handler for
// the order events, until SIGINT or SIGTERM.
func Example() {
	cfg, err := config.Load("outbox-cdc.yaml", os.Environ(), func(w string) { log.Print(w) })
	if err != nil {
		log.Fatal(err) // every problem of the file, each with its key and line
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	orders := outboxcdc.CustomSink{
		Name:  "orders-handler",
		Route: sink.Route{Types: []string{"order.*"}},
		New: func(o sink.Options) sink.Sink {
			return &handlerSink{opts: o, handle: func(_ context.Context, e *event.Event) error {
				log.Printf("order event %s from %s: %s", e.ID, e.Source, e.Data)
				return nil
			}}
		},
	}
	app, err := outboxcdc.New(ctx, cfg, outboxcdc.Options{
		Logger: slog.Default(),
		Sinks:  []outboxcdc.CustomSink{orders},
	})
	if err != nil {
		log.Fatal(err) // the server, the slot, a sink or the listener is not right
	}
	if err := app.Run(ctx); err != nil {
		log.Fatal(err) // stopped by something reconnecting cannot fix
	}
}

// A status endpoint of the embedding program's own, from the control
// surface.
func ExampleApp_Snapshot() {
	cfg, err := config.Load("outbox-cdc.yaml", os.Environ(), nil)
	if err != nil {
		log.Fatal(err)
	}
	app, err := outboxcdc.New(context.Background(), cfg, outboxcdc.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close() // releases what New opened when Run never runs

	s := app.Snapshot()
	fmt.Printf("%s, confirmed %s, %d events in flight\n", s.Role, s.ConfirmedLSN, s.InFlightEvents)
	for _, k := range s.Sinks {
		fmt.Printf("sink %s: %d pending, acknowledged below %s\n", k.Name, k.Pending, k.AcknowledgedLSN)
	}
	json.NewEncoder(os.Stdout).Encode(app.EffectiveConfig()) // secrets masked
}
