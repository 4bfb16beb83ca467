// Command order-producer writes com.example.order.* events into the
// outbox table with package outbox, each in the transaction of the business
// write it belongs to, for outbox-cdc to publish and order-projection to
// consume.
//
//	PG_URL=postgres://... go run ./examples/order-producer -orders 10 -events 100
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/outbox-cdc/outbox-cdc/outbox"
)

func main() {
	orders := flag.Int("orders", 10, "orders")
	events := flag.Int("events", 100, "events to write")
	flag.Parse()
	if err := run(*orders, *events); err != nil {
		fmt.Fprintln(os.Stderr, "order-producer:", err)
		os.Exit(1)
	}
}

func run(orders, events int) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv("PG_URL"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	w, err := outbox.New(outbox.Table{}) // public.outbox, outbox-cdc's default columns
	if err != nil {
		return err
	}
	for i := range events {
		order := fmt.Sprint(rand.IntN(orders) + 1)
		amount := fmt.Sprintf("%d.%02d", rand.IntN(100), rand.IntN(100))
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		// ... the business write of the order goes here, in tx ...
		_, err = w.Write(ctx, tx, outbox.Event{
			Type:          "com.example.order.line_added",
			Source:        "/shop/orders",
			AggregateType: "order",
			AggregateID:   order,
			Data:          map[string]any{"order_id": order, "line": i, "amount": json.Number(amount)},
		})
		if err != nil {
			tx.Rollback(ctx)
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
	}
	fmt.Printf("wrote %d events for %d orders\n", events, orders)
	return nil
}
