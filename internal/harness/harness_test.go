package harness_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

// server is what every harness server type has in common.
type server interface {
	Stop() error
	Kill() error
	Start(context.Context) error
	Close() error
	LogTail(n int) string
}

// cleanup closes s at the end of the test, printing its log tail first if
// the test failed.
func cleanup(t *testing.T, s server) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log tail:\n%s", s.LogTail(60))
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// timed runs f and logs how long it took.
func timed(t *testing.T, what string, f func() error) {
	t.Helper()
	start := time.Now()
	if err := f(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s took %v", what, time.Since(start).Round(time.Millisecond))
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := time.Now()
	pg, err := harness.StartPostgres(ctx, harness.PostgresOptions{})
	harness.SkipIfNotInstalled(t, "postgres", err)
	t.Logf("initdb + start took %v (port %d, %s)", time.Since(start).Round(time.Millisecond), pg.Port(), pg.BinDir())
	cleanup(t, pg)

	query := func(db, sql string) string {
		t.Helper()
		conn, err := pg.Connect(ctx, db)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(ctx)
		var s string
		if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return s
	}
	if got := query("postgres", "SELECT 1::text"); got != "1" {
		t.Fatalf("SELECT 1 = %q", got)
	}
	if got := query("postgres", "SHOW wal_level"); got != "logical" {
		t.Fatalf("wal_level = %q, want logical", got)
	}
	if err := pg.CreateDatabase(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := pg.CreateRole(ctx, "cdc", true); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(ctx, "app", `
		CREATE TABLE outbox (id bigserial PRIMARY KEY, payload text);
		INSERT INTO outbox (payload) VALUES ('one');`); err != nil {
		t.Fatal(err)
	}
	if err := pg.Exec(ctx, "app", "SELECT pg_create_logical_replication_slot('harness_slot', 'pgoutput')"); err != nil {
		t.Fatal(err)
	}
	if got := query("app", "SELECT rolreplication::text FROM pg_roles WHERE rolname = 'cdc'"); got != "true" {
		t.Fatalf("cdc rolreplication = %q", got)
	}

	timed(t, "stop", pg.Stop)
	timed(t, "start after stop", func() error { return pg.Start(ctx) })
	if got := query("app", "SELECT string_agg(payload, ',') FROM outbox"); got != "one" {
		t.Fatalf("after restart: rows = %q", got)
	}
	if err := pg.Exec(ctx, "app", "INSERT INTO outbox (payload) VALUES ('two')"); err != nil {
		t.Fatal(err)
	}

	timed(t, "kill", pg.Kill)
	timed(t, "start after kill (crash recovery)", func() error { return pg.Start(ctx) })
	if got := query("app", "SELECT string_agg(payload, ',' ORDER BY id) FROM outbox"); got != "one,two" {
		t.Fatalf("after kill: rows = %q", got)
	}
	if got := query("app", "SELECT slot_name::text FROM pg_replication_slots"); got != "harness_slot" {
		t.Fatalf("slot = %q", got)
	}
	// A logical replication connection as the REPLICATION role works.
	rc, err := pgconn.Connect(ctx, pg.UserURL("cdc", "app")+"&replication=database")
	if err != nil {
		t.Fatalf("replication connection: %v", err)
	}
	defer rc.Close(ctx)
	res, err := rc.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		t.Fatalf("IDENTIFY_SYSTEM: %v %v", res, err)
	}
}

func TestPostgresWALLevelReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, err := harness.StartPostgres(ctx, harness.PostgresOptions{WALLevel: "replica", Fsync: true})
	harness.SkipIfNotInstalled(t, "postgres", err)
	cleanup(t, pg)
	conn, err := pg.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var level, fsync string
	if err := conn.QueryRow(ctx, "SELECT current_setting('wal_level'), current_setting('fsync')").Scan(&level, &fsync); err != nil {
		t.Fatal(err)
	}
	if level != "replica" || fsync != "on" {
		t.Fatalf("wal_level=%s fsync=%s, want replica on", level, fsync)
	}
	_, err = conn.Exec(ctx, "SELECT pg_create_logical_replication_slot('s', 'pgoutput')")
	if err == nil || !strings.Contains(err.Error(), "wal_level") {
		t.Fatalf("creating a logical slot with wal_level=replica: err = %v, want a wal_level error", err)
	}
}

// redisDo sends one command over a raw RESP connection and returns the
// first reply line.
func redisDo(t *testing.T, addr string, args ...string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial redis: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var sb strings.Builder
	fmt.Fprintf(&sb, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&sb, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(sb.String())); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "$") && line != "$-1" { // bulk string: read its body
		body, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimRight(body, "\r\n")
	}
	return line
}

func TestRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := time.Now()
	r, err := harness.StartRedis(ctx, harness.RedisOptions{AppendOnly: true})
	harness.SkipIfNotInstalled(t, "redis", err)
	t.Logf("start took %v (%s)", time.Since(start).Round(time.Millisecond), r.Addr())
	cleanup(t, r)

	if got := redisDo(t, r.Addr(), "PING"); got != "+PONG" {
		t.Fatalf("PING = %q", got)
	}
	if got := redisDo(t, r.Addr(), "SET", "k", "v1"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	timed(t, "stop", r.Stop)
	timed(t, "start after stop", func() error { return r.Start(ctx) })
	if got := redisDo(t, r.Addr(), "PING"); got != "+PONG" {
		t.Fatalf("PING = %q", got)
	}
	if got := redisDo(t, r.Addr(), "GET", "k"); got != "v1" {
		t.Fatalf("GET after restart = %q, want v1 (appendonly)", got)
	}
}

func TestRedisAuth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, err := harness.StartRedis(ctx, harness.RedisOptions{
		Password: "s3cret",
		Users:    []harness.RedisUser{{Name: "cdc", Password: "p w\"d"}},
	})
	harness.SkipIfNotInstalled(t, "redis", err)
	cleanup(t, r)
	if got := redisDo(t, r.Addr(), "PING"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("PING without AUTH = %q, want -NOAUTH", got)
	}
	if err := r.Ping(ctx); err != nil {
		t.Fatalf("Ping with password: %v", err)
	}
	if got := redisDo(t, r.Addr(), "AUTH", "cdc", "p w\"d"); got != "+OK" {
		t.Fatalf("AUTH as ACL user = %q", got)
	}
}

// TestServerDiedOnItsOwn: Stop reports a server that exited by itself, and
// Start brings it back.
func TestServerDiedOnItsOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, err := harness.StartRedis(ctx, harness.RedisOptions{})
	harness.SkipIfNotInstalled(t, "redis", err)
	cleanup(t, r)
	conn, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n"))
	conn.Close()
	for deadline := time.Now().Add(10 * time.Second); r.Running(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("redis still running after SHUTDOWN")
		}
	}
	if err := r.Stop(); err == nil || !strings.Contains(err.Error(), "exited on its own") {
		t.Fatalf("Stop after SHUTDOWN: err = %v", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := redisDo(t, r.Addr(), "PING"); got != "+PONG" {
		t.Fatalf("PING = %q", got)
	}
}

func TestNATS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := time.Now()
	n, err := harness.StartNATS(ctx, harness.NATSOptions{MaxPayload: 2 << 20, User: "cdc", Password: "pw"})
	harness.SkipIfNotInstalled(t, "nats", err)
	t.Logf("start took %v (%s)", time.Since(start).Round(time.Millisecond), n.URL())
	cleanup(t, n)

	roundTrip := func(wantMsgs uint64) {
		t.Helper()
		nc, err := nats.Connect(n.URL(), nats.UserInfo("cdc", "pw"), nats.Timeout(5*time.Second))
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer nc.Close()
		if got := nc.MaxPayload(); got != 2<<20 {
			t.Errorf("max payload = %d, want %d", got, 2<<20)
		}
		js, err := nc.JetStream()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.AddStream(&nats.StreamConfig{Name: "OUTBOX", Subjects: []string{"outbox.>"}, Storage: nats.FileStorage}); err != nil {
			t.Fatalf("AddStream: %v", err)
		}
		if _, err := js.Publish("outbox.test", []byte("hello"), nats.MsgId(fmt.Sprint("m", wantMsgs))); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		info, err := js.StreamInfo("OUTBOX")
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != wantMsgs {
			t.Fatalf("stream has %d messages, want %d", info.State.Msgs, wantMsgs)
		}
	}
	roundTrip(1)
	timed(t, "stop", n.Stop)
	timed(t, "start after stop", func() error { return n.Start(ctx) })
	roundTrip(2) // the stream and its first message survived
	timed(t, "kill", n.Kill)
	timed(t, "start after kill", func() error { return n.Start(ctx) })
	roundTrip(3)
}

func TestKafka(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	k, err := harness.StartKafka(ctx, harness.KafkaOptions{})
	harness.SkipIfNotInstalled(t, "kafka", err)
	t.Logf("format + start took %v (%s)", time.Since(start).Round(time.Millisecond), k.Addr())
	cleanup(t, k)

	const topic = "outbox.events"
	roundTrip := func(value string, want []string) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...),
			kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		var got []string
		pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		defer pcancel()
		for len(got) < len(want) {
			fs := cl.PollFetches(pctx)
			if err := pctx.Err(); err != nil {
				t.Fatalf("consume: got %q so far: %v", got, err)
			}
			fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
			fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("consumed %q, want %q", got, want)
		}
	}

	adm, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	roundTrip("one", []string{"one"})
	timed(t, "stop", k.Stop)
	timed(t, "start after stop", func() error { return k.Start(ctx) })
	roundTrip("two", []string{"one", "two"})
	timed(t, "kill", k.Kill)
	timed(t, "start after kill", func() error { return k.Start(ctx) })
	roundTrip("three", []string{"one", "two", "three"})
}

// TestKafkaOptions checks the broker settings and, running beside
// TestKafka, that a broker made from the per-process format template gets
// its own cluster ID.
func TestKafkaOptions(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	k, err := harness.StartKafka(ctx, harness.KafkaOptions{DisableAutoCreateTopics: true, MessageMaxBytes: 4 << 20, NumPartitions: 3})
	harness.SkipIfNotInstalled(t, "kafka", err)
	t.Logf("format + start took %v (%s)", time.Since(start).Round(time.Millisecond), k.Addr())
	cleanup(t, k)

	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if md.Cluster != k.ClusterID() {
		t.Errorf("cluster ID = %q, want %q", md.Cluster, k.ClusterID())
	}
	rcs, err := adm.DescribeBrokerConfigs(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("1", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"auto.create.topics.enable": "false", "message.max.bytes": "4194304", "num.partitions": "3"}
	for _, c := range rc.Configs {
		if w, ok := want[c.Key]; ok {
			if c.MaybeValue() != w {
				t.Errorf("%s = %q, want %q", c.Key, c.MaybeValue(), w)
			}
			delete(want, c.Key)
		}
	}
	if len(want) > 0 {
		t.Errorf("configs not found: %v", want)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	t.Parallel()
	_, err := harness.StartPostgres(context.Background(), harness.PostgresOptions{
		ExtraConf: map[string]string{"shared_buffers": "lots"},
	})
	if errors.Is(err, harness.ErrNotInstalled) {
		harness.SkipIfNotInstalled(t, "postgres", err)
	}
	if err == nil || !strings.Contains(err.Error(), `invalid value for parameter "shared_buffers"`) {
		t.Fatalf("err = %v, want one quoting the server log", err)
	}
}

func TestRequire(t *testing.T) {
	for _, tc := range []struct {
		ci, req string
		want    map[string]bool
	}{
		{"", "", map[string]bool{"kafka": false}},
		{"true", "", map[string]bool{"kafka": true}},
		{"true", "0", map[string]bool{"kafka": false}},
		{"", "1", map[string]bool{"kafka": true, "redis": true}},
		{"", "kafka, nats", map[string]bool{"kafka": true, "nats": true, "redis": false}},
	} {
		t.Setenv("CI", tc.ci)
		t.Setenv(harness.EnvRequireServers, tc.req)
		for name, want := range tc.want {
			if got := harness.Require(name); got != want {
				t.Errorf("CI=%q %s=%q: Require(%q) = %v, want %v", tc.ci, harness.EnvRequireServers, tc.req, name, got, want)
			}
		}
	}
}

func TestNotInstalled(t *testing.T) {
	ctx := context.Background()
	t.Setenv(harness.EnvPGBin, t.TempDir())
	t.Setenv(harness.EnvPGVersion, "") // a selected major would win over EnvPGBin
	t.Setenv(harness.EnvRedisServer, "/nonexistent/redis-server")
	t.Setenv(harness.EnvNATSServer, "/nonexistent/nats-server")
	t.Setenv(harness.EnvKafkaLibs, t.TempDir())
	_, err1 := harness.StartPostgres(ctx, harness.PostgresOptions{})
	_, err2 := harness.StartRedis(ctx, harness.RedisOptions{})
	_, err3 := harness.StartNATS(ctx, harness.NATSOptions{})
	_, err4 := harness.StartKafka(ctx, harness.KafkaOptions{})
	for i, err := range []error{err1, err2, err3, err4} {
		if !errors.Is(err, harness.ErrNotInstalled) {
			t.Errorf("server %d: err = %v, want ErrNotInstalled", i, err)
		}
	}
}

// TestLegacyEnvNames: a variable's name from before the OUTBOX_CDC_TEST_
// prefix is read when the new name is not set, and named in errors.
func TestLegacyEnvNames(t *testing.T) {
	unset := func(name string) {
		t.Setenv(name, "") // restored after the test
		os.Unsetenv(name)
	}
	unset(harness.EnvRedisServer)
	unset(harness.EnvRequireServers)
	t.Setenv("OUTBOX_CDC_REDIS_SERVER", "/nonexistent/redis-server")
	t.Setenv("OUTBOX_CDC_REQUIRE_SERVERS", "redis")
	_, err := harness.StartRedis(context.Background(), harness.RedisOptions{})
	if !errors.Is(err, harness.ErrNotInstalled) || !strings.Contains(err.Error(), "OUTBOX_CDC_REDIS_SERVER=/nonexistent/redis-server") {
		t.Errorf("StartRedis: err = %v, want ErrNotInstalled naming OUTBOX_CDC_REDIS_SERVER", err)
	}
	if !harness.Require("redis") || harness.Require("kafka") {
		t.Errorf("Require did not follow OUTBOX_CDC_REQUIRE_SERVERS=redis")
	}
	t.Setenv(harness.EnvRequireServers, "kafka") // the new name wins
	if harness.Require("redis") || !harness.Require("kafka") {
		t.Errorf("Require did not follow %s=kafka", harness.EnvRequireServers)
	}
}
