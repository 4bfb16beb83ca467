// Command go writes one order and its event in one transaction, with pgx
// and the outbox_publish helper that `outbox-cdc setup` creates.
//
//	DATABASE_URL=postgres://app@127.0.0.1:5432/shop ORDER_ID=1001 go run ./examples/writing-events/go
package main

import (
	"context"
	"encoding/json"
	"log"
	"os"

	"github.com/jackc/pgx/v5"
)

func main() {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	orderID := os.Getenv("ORDER_ID")

	data, err := json.Marshal(map[string]any{"order_id": orderID, "total": "42.50"})
	if err != nil {
		log.Fatal(err)
	}
	// The order and its event commit together, or neither does.
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO orders (id, total) VALUES ($1, 42.50)`, orderID); err != nil {
			return err
		}
		var eventID string
		err := tx.QueryRow(ctx, `SELECT outbox_publish($1, $2, $3::jsonb, $4, $5)`,
			"com.example.order.created", // type
			"/shop/go",                  // source
			string(data),                // data
			"order",                     // aggregate_type: routing (topic outbox.order)
			orderID,                     // aggregate_id: partition key and order
		).Scan(&eventID)
		if err == nil {
			log.Printf("event %s written", eventID)
		}
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}
