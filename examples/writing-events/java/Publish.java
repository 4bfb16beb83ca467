// Write one order and its event in one transaction, with the PostgreSQL
// JDBC driver. Runs as a single source file (Java 11+):
//
//   DATABASE_URL=jdbc:postgresql://127.0.0.1:5432/shop?user=app ORDER_ID=1004 \
//     java -cp postgresql-42.7.14.jar Publish.java
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;

public class Publish {
    public static void main(String[] args) throws Exception {
        String orderId = System.getenv("ORDER_ID");
        try (Connection conn = DriverManager.getConnection(System.getenv("DATABASE_URL"))) {
            // One transaction: the order and its event commit together.
            conn.setAutoCommit(false);
            try (PreparedStatement order = conn.prepareStatement(
                    "INSERT INTO orders (id, total) VALUES (?, 42.50)")) {
                order.setLong(1, Long.parseLong(orderId));
                order.executeUpdate();
            }
            String eventId;
            try (PreparedStatement publish = conn.prepareStatement(
                    "SELECT outbox_publish(?, ?, ?::jsonb, ?, ?)")) {
                publish.setString(1, "com.example.order.created");  // type
                publish.setString(2, "/shop/java");                 // source
                publish.setString(3, "{\"order_id\": \"" + orderId + "\", \"total\": \"42.50\"}"); // data
                publish.setString(4, "order");                      // aggregate_type: routing
                publish.setString(5, orderId);                      // aggregate_id: partition key and order
                try (ResultSet rs = publish.executeQuery()) {
                    rs.next();
                    eventId = rs.getString(1);
                }
            }
            conn.commit();
            System.out.println("event " + eventId + " written");
        }
    }
}
