// Write one order and its event in one transaction, with node-postgres (pg).
//
//   DATABASE_URL=postgres://app@127.0.0.1:5432/shop ORDER_ID=1003 node publish.js
const { Client } = require("pg");

async function main() {
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  const orderId = process.env.ORDER_ID;
  try {
    // One transaction: the order and its event commit together.
    await client.query("BEGIN");
    await client.query("INSERT INTO orders (id, total) VALUES ($1, 42.50)", [orderId]);
    const { rows } = await client.query(
      "SELECT outbox_publish($1, $2, $3::jsonb, $4, $5) AS id",
      [
        "com.example.order.created", // type
        "/shop/node", // source
        JSON.stringify({ order_id: orderId, total: "42.50" }), // data
        "order", // aggregate_type: routing (topic outbox.order)
        orderId, // aggregate_id: partition key and order
      ],
    );
    await client.query("COMMIT");
    console.log(`event ${rows[0].id} written`);
  } catch (err) {
    await client.query("ROLLBACK");
    throw err;
  } finally {
    await client.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
