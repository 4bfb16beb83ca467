package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

// exampleDeps returns the directory scripts/install-example-deps.sh fills
// (the Python venv, the Node.js modules, the JDBC driver), failing under CI
// and skipping on a laptop when it is not there.
func exampleDeps(t *testing.T, part string) string {
	t.Helper()
	dir := filepath.Join(harness.CacheDir(), "examples", part)
	if _, err := os.Stat(filepath.Join(dir, ".stamp")); err != nil {
		if harness.Require("examples") {
			t.Fatalf("%s is missing: run scripts/install-test-deps.sh", dir)
		}
		t.Skipf("%s is missing: run scripts/install-test-deps.sh", dir)
	}
	return dir
}

// TestWritingEventsExamples runs every code sample of docs/writing-events.md
// (examples/writing-events: Go, Python, Node.js, Java, psql, and the logical
// message without a table) against a throwaway PostgreSQL with outbox-cdc
// streaming to the file sink, and checks that each one's event arrives with
// the attributes the sample gave it.
func TestWritingEventsExamples(t *testing.T) {
	e := newEnv(t, "outbox:\n  messages: {enabled: true}\n")
	e.exec(`CREATE TABLE orders (id bigint PRIMARY KEY, total numeric NOT NULL)`)
	p := e.start()
	defer p.stop(t)
	waitFor(t, 15*time.Second, "streaming", func() bool { _, a := e.slot(); return a })

	pgURL := needPostgres(t).URL(e.db)
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	jdbcURL := fmt.Sprintf("jdbc:postgresql://%s%s?user=%s", u.Host, u.Path, u.User.Username())
	root, _ := filepath.Abs("../examples/writing-events")
	psql := filepath.Join(os.Getenv(harness.EnvPGBin), "psql")
	if os.Getenv(harness.EnvPGBin) == "" {
		psql = "psql"
	}

	type example struct {
		name, source, orderID string
		cmd                   func(t *testing.T) *exec.Cmd
		traceparent           bool
	}
	examples := []example{
		{"go", "/shop/go", "1001", func(t *testing.T) *exec.Cmd {
			return exec.Command("go", "run", "./examples/writing-events/go")
		}, false},
		{"python", "/shop/python", "1002", func(t *testing.T) *exec.Cmd {
			return exec.Command(filepath.Join(exampleDeps(t, "venv"), "bin", "python"), filepath.Join(root, "python", "publish.py"))
		}, false},
		{"node", "/shop/node", "1003", func(t *testing.T) *exec.Cmd {
			c := exec.Command("node", filepath.Join(root, "node", "publish.js"))
			c.Env = append(c.Environ(), "NODE_PATH="+filepath.Join(exampleDeps(t, "node"), "node_modules"))
			return c
		}, false},
		{"java", "/shop/java", "1004", func(t *testing.T) *exec.Cmd {
			jars, _ := filepath.Glob(filepath.Join(exampleDeps(t, "java"), "postgresql-*.jar"))
			if len(jars) != 1 {
				t.Fatalf("want one postgresql jar, found %v", jars)
			}
			c := exec.Command("java", "-cp", jars[0], filepath.Join(root, "java", "Publish.java"))
			c.Env = append(c.Environ(), "DATABASE_URL="+jdbcURL)
			return c
		}, false},
		{"psql", "/shop/psql", "1005", func(t *testing.T) *exec.Cmd {
			return exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", pgURL, "-v", "order_id=1005", "-f", filepath.Join(root, "psql", "publish.sql"))
		}, true},
		{"psql message", "/shop/psql-message", "1006", func(t *testing.T) *exec.Cmd {
			return exec.Command(psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", pgURL, "-v", "order_id=1006", "-f", filepath.Join(root, "psql", "message.sql"))
		}, false},
	}
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c := ex.cmd(t)
			c = exec.CommandContext(ctx, c.Path, c.Args[1:]...)
			c.Env = append(ex.cmd(t).Environ(), "ORDER_ID="+ex.orderID)
			if !strings.Contains(strings.Join(c.Env, "\n"), "DATABASE_URL=jdbc:") {
				c.Env = append(c.Env, "DATABASE_URL="+pgURL)
			}
			c.Dir = ".."
			if out, err := c.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(c.Args, " "), err, out)
			}
			var got *delivered
			waitFor(t, 15*time.Second, "the event of "+ex.source, func() bool {
				for _, d := range e.readEvents() {
					if d.Source == ex.source {
						got = &d
						return true
					}
				}
				return false
			})
			if got.Type != "com.example.order.created" || got.PartitionKey != ex.orderID || got.ID == "" {
				t.Errorf("event %s", got.raw)
			}
			var data struct {
				OrderID string `json:"order_id"`
				Total   string `json:"total"`
			}
			if err := json.Unmarshal(got.Data, &data); err != nil || data.OrderID != ex.orderID || data.Total != "42.50" {
				t.Errorf("event data %s: %v", got.Data, err)
			}
			if ex.traceparent && !strings.Contains(string(got.raw), `"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`) {
				t.Errorf("event %s has no traceparent extension", got.raw)
			}
		})
	}
}
