package harness

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaOptions configures StartKafka. The zero value is a single-node
// broker that auto-creates topics with one partition.
type KafkaOptions struct {
	// Port is the PLAINTEXT client port on 127.0.0.1. Default: a free port
	// (see FreePort), replaced by another when it is taken at start.
	Port int
	// ControllerPort is the KRaft CONTROLLER listener port. Default: a
	// free port, replaced like Port.
	ControllerPort int
	// DisableAutoCreateTopics sets auto.create.topics.enable=false. Default:
	// topics are created on first use.
	DisableAutoCreateTopics bool
	// NumPartitions is num.partitions, the partition count of auto-created
	// topics. Default 1.
	NumPartitions int
	// MessageMaxBytes is message.max.bytes, the largest record batch the
	// broker accepts. Default: Kafka's (1048588).
	MessageMaxBytes int
	// ExtraProps adds or overrides server.properties settings.
	ExtraProps map[string]string
	// LibsDir is the directory of broker jars. Default:
	// $OUTBOX_CDC_TEST_KAFKA_LIBS, else $OUTBOX_CDC_TEST_CACHE/kafka-libs.
	LibsDir string
	// HeapMB is the JVM's maximum heap (-Xmx) in MiB. Default 512.
	HeapMB int
	// JVMOpts are extra JVM options, appended after the defaults.
	JVMOpts []string
	// StartTimeout bounds each Start. Default 90 s.
	StartTimeout time.Duration
}

// Kafka is a single-node Apache Kafka started by StartKafka: one JVM that is
// both KRaft controller and broker (node.id 1; do not override it), with a
// PLAINTEXT listener on 127.0.0.1. Its log dirs survive Stop/Start and
// Kill/Start. Methods are safe for concurrent use.
//
// Start after Kill takes about 10 s longer than after Stop: the restarted
// broker cannot register until the killed one's session times out
// (broker.session.timeout.ms, 9 s), as after a real crash.
type Kafka struct {
	*base
	opts           KafkaOptions
	java           string
	libs           string
	port           int
	controllerPort int
	logDir         string
	propsPath      string
	log4jPath      string
	clusterID      string
}

// StartKafka writes server.properties, formats the storage (kafka-storage
// format) and starts the broker with java. It blocks until the broker
// answers a Metadata request listing itself (at most opts.StartTimeout,
// default 90 s). On an idle 2-core machine that takes about 8 s for the
// first broker of a test process and 5 s for later ones (the format is
// reused); on a busy one it can take several times longer. When a port it
// picked is taken by the time the broker binds it, it formats and starts a
// new broker on new ports (see ErrPortTaken). Close it when done.
func StartKafka(ctx context.Context, opts KafkaOptions) (*Kafka, error) {
	java, err := javaBin()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	libs, err := kafkaLibsDir(opts.LibsDir)
	if err != nil {
		return nil, err
	}
	if opts.NumPartitions == 0 {
		opts.NumPartitions = 1
	}
	if opts.HeapMB == 0 {
		opts.HeapMB = 512
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 90 * time.Second
	}
	b, err := newBase("kafka", nil)
	if err != nil {
		return nil, err
	}
	k := &Kafka{base: b, opts: opts, java: java, libs: libs, port: opts.Port, controllerPort: opts.ControllerPort,
		logDir:    filepath.Join(b.dir, "data"),
		propsPath: filepath.Join(b.dir, "server.properties"),
		log4jPath: filepath.Join(b.dir, "log4j2.properties"),
		clusterID: kafkaClusterID(),
	}
	for attempt := 1; ; attempt++ {
		err := k.firstStart(ctx)
		if err == nil {
			return k, nil
		}
		if retry, err := retryPort(err, attempt, opts.Port == 0 || opts.ControllerPort == 0); !retry {
			b.close()
			return nil, err
		}
		// Another program took a port: start afresh on new ones (the
		// failed start left metadata that names the old controller).
		k.port, k.controllerPort = opts.Port, opts.ControllerPort
		if err := os.RemoveAll(k.logDir); err != nil {
			b.close()
			return nil, err
		}
	}
}

// firstStart picks the ports that are not set, writes the configuration,
// formats the storage and starts the broker.
func (k *Kafka) firstStart(ctx context.Context) error {
	var err error
	if k.port == 0 {
		if k.port, err = k.reserve(ctx); err != nil {
			return err
		}
	}
	if k.controllerPort == 0 {
		if k.controllerPort, err = k.reserve(ctx); err != nil {
			return err
		}
	}
	if err := k.writeConfig(); err != nil {
		return err
	}
	if err := k.format(ctx); err != nil {
		return err
	}
	return k.Start(ctx)
}

// kafkaLibsDir returns dir, else $OUTBOX_CDC_TEST_KAFKA_LIBS, else
// $OUTBOX_CDC_TEST_CACHE/kafka-libs; it must hold a kafka_2.13-*.jar.
func kafkaLibsDir(dir string) (string, error) {
	if dir == "" {
		dir = getenv(EnvKafkaLibs)
	}
	if dir == "" {
		dir = filepath.Join(CacheDir(), "kafka-libs")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "kafka_2.13-*.jar")); len(m) == 0 {
		return "", fmt.Errorf("kafka: no kafka_2.13-*.jar in %s (set %s): %w", dir, EnvKafkaLibs, ErrNotInstalled)
	}
	return dir, nil
}

// kafkaClusterID returns a random cluster ID in Kafka's Uuid format
// (unpadded URL-safe base64 of 16 bytes, not starting with '-').
func kafkaClusterID() string {
	for {
		var b [16]byte
		rand.Read(b[:])
		if id := base64.RawURLEncoding.EncodeToString(b[:]); id[0] != '-' {
			return id
		}
	}
}

func (k *Kafka) writeConfig() error {
	props := map[string]string{
		"process.roles":                                    "broker,controller",
		"node.id":                                          "1",
		"controller.quorum.voters":                         "1@127.0.0.1:" + itoa(k.controllerPort),
		"listeners":                                        fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", k.port, k.controllerPort),
		"advertised.listeners":                             fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", k.port),
		"controller.listener.names":                        "CONTROLLER",
		"inter.broker.listener.name":                       "PLAINTEXT",
		"listener.security.protocol.map":                   "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"log.dirs":                                         k.logDir,
		"offsets.topic.replication.factor":                 "1",
		"offsets.topic.num.partitions":                     "1",
		"transaction.state.log.replication.factor":         "1",
		"transaction.state.log.min.isr":                    "1",
		"transaction.state.log.num.partitions":             "1",
		"share.coordinator.state.topic.replication.factor": "1",
		"share.coordinator.state.topic.min.isr":            "1",
		"group.initial.rebalance.delay.ms":                 "0",
		"auto.create.topics.enable":                        fmt.Sprint(!k.opts.DisableAutoCreateTopics),
		"num.partitions":                                   itoa(k.opts.NumPartitions),
	}
	if k.opts.MessageMaxBytes > 0 {
		props["message.max.bytes"] = itoa(k.opts.MessageMaxBytes)
		// Let the broker fetch/replicate batches that large too.
		props["replica.fetch.max.bytes"] = itoa(k.opts.MessageMaxBytes)
	}
	maps.Copy(props, k.opts.ExtraProps)
	var sb strings.Builder
	sb.WriteString("# outbox-cdc test harness\n")
	for _, key := range slices.Sorted(maps.Keys(props)) {
		fmt.Fprintf(&sb, "%s=%s\n", key, props[key])
	}
	if err := os.WriteFile(k.propsPath, []byte(sb.String()), 0o644); err != nil {
		return err
	}
	log4j := strings.Join([]string{
		"status = warn",
		"appender.file.type = File",
		"appender.file.name = FILE",
		"appender.file.fileName = " + k.logPath,
		"appender.file.append = true",
		"appender.file.layout.type = PatternLayout",
		"appender.file.layout.pattern = [%d] %p %m (%c)%n",
		"rootLogger.level = INFO",
		"rootLogger.appenderRef.file.ref = FILE",
		"logger.requestlog.name = kafka.request.logger",
		"logger.requestlog.level = WARN",
	}, "\n") + "\n"
	return os.WriteFile(k.log4jPath, []byte(log4j), 0o644)
}

func (k *Kafka) jvmArgs(heapMB int) []string {
	tmp := filepath.Join(k.dir, "tmp")
	os.MkdirAll(tmp, 0o755)
	return []string{
		fmt.Sprintf("-Xmx%dm", heapMB),
		"-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
		"-XX:+ExplicitGCInvokesConcurrent", "-XX:+ExitOnOutOfMemoryError",
		"-Djava.awt.headless=true",
		"-Djava.io.tmpdir=" + tmp, // native libs unpacked by zstd/snappy go here
		"-Dlog4j2.configurationFile=" + k.log4jPath,
		"-Dkafka.logs.dir=" + k.dir,
	}
}

// format prepares the log dir (`kafka-storage format`) unless it is
// formatted already.
//
// A format runs a JVM for several seconds, so each test process formats
// once per jar dir and ExtraProps and keeps the result as a template: later
// brokers get a copy of its files (bootstrap.checkpoint holds only feature
// levels) with their own cluster.id and directory.id in meta.properties.
func (k *Kafka) format(ctx context.Context) error {
	metaPath := filepath.Join(k.logDir, "meta.properties")
	if _, err := os.Stat(metaPath); err == nil {
		return nil
	}
	var key strings.Builder
	key.WriteString(k.libs)
	for _, p := range slices.Sorted(maps.Keys(k.opts.ExtraProps)) {
		fmt.Fprintf(&key, "\x00%s=%s", p, k.opts.ExtraProps[p])
	}
	kafkaTemplatesMu.Lock()
	defer kafkaTemplatesMu.Unlock()
	if files, ok := kafkaTemplates[key.String()]; ok {
		if err := os.MkdirAll(k.logDir, 0o755); err != nil {
			return err
		}
		for name, data := range files {
			if name == "meta.properties" {
				data = rewriteMetaProperties(data, map[string]string{
					"cluster.id": k.clusterID, "directory.id": kafkaClusterID()})
			}
			if err := os.WriteFile(filepath.Join(k.logDir, name), data, 0o644); err != nil {
				return err
			}
		}
		return nil
	}

	ctx, cancel := deadlineFrom(ctx, 2*time.Minute)
	defer cancel()
	args := append(k.jvmArgs(256), "-cp", filepath.Join(k.libs, "*"), "kafka.tools.StorageTool",
		"format", "-t", k.clusterID, "-c", k.propsPath)
	if err := runLogged(ctx, procSpec{path: k.java, args: args, dir: k.dir, logPath: k.logPath}); err != nil {
		return fmt.Errorf("kafka: format storage: %w", err)
	}
	// Keep the result as a template if it is a flat directory of files.
	ents, err := os.ReadDir(k.logDir)
	if err != nil {
		return nil
	}
	files := map[string][]byte{}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(k.logDir, e.Name()))
		if err != nil {
			return nil
		}
		files[e.Name()] = data
	}
	if _, ok := files["meta.properties"]; ok {
		kafkaTemplates[key.String()] = files
	}
	return nil
}

var (
	kafkaTemplatesMu sync.Mutex
	kafkaTemplates   = map[string]map[string][]byte{} // see Kafka.format
)

// rewriteMetaProperties sets the given keys of a Java properties file.
func rewriteMetaProperties(data []byte, set map[string]string) []byte {
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if k, _, ok := strings.Cut(l, "="); ok {
			if v, ok := set[strings.TrimSpace(k)]; ok {
				lines[i] = strings.TrimSpace(k) + "=" + v
			}
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// Start starts the stopped or killed broker again on the same ports and log
// dirs (no reformat). It blocks until the broker answers a Metadata request
// that lists itself (at most KafkaOptions.StartTimeout, default 90 s, or
// ctx's deadline). The error wraps ErrPortTaken when another program took a
// port meanwhile.
func (k *Kafka) Start(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.checkStartable(); err != nil {
		return err
	}
	args := append(k.jvmArgs(k.opts.HeapMB), k.opts.JVMOpts...)
	args = append(args, "-cp", filepath.Join(k.libs, "*"), "kafka.Kafka", k.propsPath)
	s := procSpec{path: k.java, args: args, dir: k.dir, binds: k.Addr() + " or " + k.ControllerAddr()}
	return k.launch(ctx, s, k.opts.StartTimeout, func(ctx context.Context, _ int) error { return k.probe(ctx) })
}

// probe asks the broker for cluster metadata and checks that it is this
// broker (its cluster ID, not that of a broker that took the port while this
// one failed to bind it) and lists itself (registered and unfenced, so topics
// can be created).
func (k *Kafka) probe(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.DialTimeout(2*time.Second), kgo.RequestRetries(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if resp.ClusterID == nil || *resp.ClusterID != k.clusterID {
		return fmt.Errorf("port %d is answered by another broker (cluster ID %v)", k.port, resp.ClusterID)
	}
	for _, b := range resp.Brokers {
		if b.NodeID == 1 {
			return nil
		}
	}
	return fmt.Errorf("kafka: metadata lists no broker yet (%d brokers)", len(resp.Brokers))
}

// Stop shuts the broker down (SIGTERM: controlled shutdown, logs flushed)
// and blocks until the JVM has exited; after 60 s it is killed and Stop
// returns an error. No-op after Stop or Kill; an error if the
// process had died on its own.
func (k *Kafka) Stop() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stop(syscall.SIGTERM, 60*time.Second)
}

// Restart is Stop followed by Start.
func (k *Kafka) Restart(ctx context.Context) error {
	if err := k.Stop(); err != nil {
		return err
	}
	return k.Start(ctx)
}

// Addr returns the client (PLAINTEXT) address "127.0.0.1:PORT".
func (k *Kafka) Addr() string { return "127.0.0.1:" + itoa(k.port) }

// Brokers returns the seed broker list: []string{Addr()}.
func (k *Kafka) Brokers() []string { return []string{k.Addr()} }

// Port returns the client (PLAINTEXT) port.
func (k *Kafka) Port() int { return k.port }

// ControllerAddr returns the KRaft controller listener's address.
func (k *Kafka) ControllerAddr() string { return "127.0.0.1:" + itoa(k.controllerPort) }

// ClusterID returns the cluster ID the storage was formatted with.
func (k *Kafka) ClusterID() string { return k.clusterID }

// LogDir returns the broker's data directory (log.dirs).
func (k *Kafka) LogDir() string { return k.logDir }
