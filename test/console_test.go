package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Admin credentials of the console tests.
const (
	operatorToken = "op-Tok3n-Zq81-Xv42-Lm97"
	viewerToken   = "vw-Tok3n-Yp55-Kd20-Rc63"
	annPassword   = "Ann-Pw-Wr27-Hs90"
)

// adminYAML is the admin section with an operator token, a viewer token
// and a user whose password is annPassword.
func adminYAML(t *testing.T) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(annPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`admin:
  enabled: true
  tokens:
    - {name: ops, role: operator, token: %q}
    - {name: dashboard, token: %q}
  users:
    - {name: ann, role: operator, password_hash: %q}
`, operatorToken, viewerToken, string(hash))
}

// consoleEnv is an env whose config enables the admin console on a free
// loopback address, with sinks (YAML list items; default: the file sink
// audit), set up again so that the search indexes exist.
func consoleEnv(t *testing.T, pgURL func(db string) string, sinks ...string) (*env, string) {
	t.Helper()
	e := newEnv(t, "")
	addr := httpAddr(t)
	if len(sinks) == 0 {
		sinks = []string{fmt.Sprintf("  - {name: audit, type: file, path: %q}", e.outPath)}
	}
	url := pg.URL(e.db)
	if pgURL != nil {
		url = pgURL(e.db)
	}
	writeFile(t, e.cfgPath, fmt.Sprintf(`postgres:
  url: %q
  status_interval: 200ms
  standby_poll: 200ms
sinks:
%s
http: {addr: %q, slot_poll: 200ms}
log: {level: debug}
%s`, url, strings.Join(sinks, "\n"), addr, adminYAML(t)))
	if out, err := e.cli(context.Background(), "setup"); err != nil {
		t.Fatalf("setup: %v\n%s", err, out)
	}
	return e, addr
}

// api calls the admin API with a bearer token ("" for none) and returns
// the status and the body.
func api(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error() // not listening (yet)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Acceptance (issue 11, 4): against the running binary, every documented
// route but the sign-in answers 401 without a token (and /status with the
// admin API on), /metrics, /healthz and /readyz stay open, a viewer gets 403
// on mutations, a cross-site form post is refused; the CLI verbs work over
// the API; `setup` created the search indexes.
func TestAdminAPIAuthentication(t *testing.T) {
	e, addr := consoleEnv(t, nil)
	p := e.start()
	base := "http://" + addr
	waitFor(t, 20*time.Second, "the API", func() bool {
		code, _ := api(t, "GET", base+"/api/v1/status", viewerToken)
		return code == 200 || p.hasExited()
	})
	if p.hasExited() {
		t.Fatalf("run exited: %v\n%s", p.err, p.log())
	}
	_, doc := api(t, "GET", base+"/api/v1/openapi.json", viewerToken)
	var d struct {
		Paths map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal([]byte(doc), &d); err != nil || len(d.Paths) == 0 {
		t.Fatalf("openapi.json: %v\n%s", err, doc)
	}
	for path, ops := range d.Paths {
		url := base + strings.NewReplacer("{name}", "audit", "{id}", "1").Replace(path)
		for method := range ops {
			m := strings.ToUpper(method)
			if code, body := api(t, m, url, ""); code != 401 {
				t.Errorf("%s %s without a token: %d, want 401: %s", m, path, code, body)
			}
			if m != "GET" && path != "/api/v1/session" {
				if code, body := api(t, m, url, viewerToken); code != 403 {
					t.Errorf("%s %s with a viewer token: %d, want 403: %s", m, path, code, body)
				}
			}
		}
	}
	if code, _ := api(t, "GET", base+"/status", ""); code != 401 {
		t.Errorf("/status without a token: %d, want 401", code)
	}
	for _, open := range []string{"/metrics", "/healthz", "/readyz"} {
		if code, body := api(t, "GET", base+open, ""); code != 200 && code != 503 {
			t.Errorf("%s without a token: %d, want it answered (200, or 503 while connecting): %s", open, code, body)
		}
	}
	// A cross-site form post, with credentials a browser would send along.
	req, _ := http.NewRequest("POST", base+"/api/v1/dead-letters/discard", strings.NewReader("q=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://attacker.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.SetBasicAuth("ann", annPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "cross-origin") {
		t.Errorf("cross-site form post: %d %s, want 403", resp.StatusCode, b)
	}

	// The CLI verbs over the API (the token comes from the config).
	var id string
	if err := e.pool.QueryRow(t.Context(), `SELECT outbox_publish('com.example.console', '/console', '{"n": 1}', 'order', 'agg-7')::text`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the event", func() bool { return hasID(e.readEvents(), id) })
	out, err := e.cli(t.Context(), "sinks")
	if err != nil || !regexp.MustCompile(`audit\s+file\s+idle`).MatchString(out) {
		t.Errorf("outbox-cdc sinks: %v\n%s", err, out)
	}
	out, err = e.cli(t.Context(), "events", "find", "--aggregate-id", "agg-7")
	if err != nil || !strings.Contains(out, id) || !strings.Contains(out, "1 events") {
		t.Errorf("outbox-cdc events find --aggregate-id agg-7: %v\n%s", err, out)
	}
	out, err = e.cli(t.Context(), "events", "republish", id, "--sink", "audit")
	if err != nil || !strings.Contains(out, "republished to sink audit") {
		t.Errorf("outbox-cdc events republish: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, "the republished copy", func() bool {
		n := 0
		for _, d := range e.readEvents() {
			if d.ID == id {
				n++
			}
		}
		return n == 2
	})
	out, err = e.cliEnv(t.Context(), []string{"OUTBOX_CDC_TOKEN=" + viewerToken}, "sinks", "pause", "audit")
	if err == nil || !strings.Contains(out, "viewer") {
		t.Errorf("sinks pause with a viewer token: %v\n%s", err, out)
	}
	out, err = e.cli(t.Context(), "status")
	if err != nil || !strings.Contains(out, "instance:        streaming") || !regexp.MustCompile(`retained WAL:\s+\d+ bytes \(\d+\.\d [KMG]iB\)`).MatchString(out) {
		t.Errorf("status with the admin API on: %v\n%s", err, out)
	}
	var n int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_indexes WHERE tablename = 'outbox' AND indexname LIKE 'outbox_%_search'`).Scan(&n); err != nil || n != 3 {
		t.Errorf("setup with admin.enabled made %d search indexes (%v), want 3", n, err)
	}
	p.stop(t)
	if log := p.log(); !strings.Contains(log, `admin: POST /api/v1/events/`+id+`/republish`) || !strings.Contains(log, "who=ops") {
		t.Errorf("the republish is not logged with who did it:\n%s", tail(log, 30))
	}
}

// Acceptance (issue 11, 4): with the console on a non-loopback address and
// no authentication, run refuses to start, saying why and what to do,
// before it binds the address.
func TestAdminRefusesOpenNonLoopback(t *testing.T) {
	e := newEnv(t, "")
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := e.cliEnv(ctx, []string{fmt.Sprintf("OUTBOX_CDC_HTTP_ADDR=0.0.0.0:%d", port), "OUTBOX_CDC_ADMIN_ENABLED=true"}, "run")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("run with the console open on 0.0.0.0: %v, want exit 1:\n%s", err, out)
	}
	for _, want := range []string{fmt.Sprintf("http.addr 0.0.0.0:%d is not a loopback address", port), "admin.tokens", "127.0.0.1"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	// With a token it starts.
	p := e.start(fmt.Sprintf("OUTBOX_CDC_HTTP_ADDR=0.0.0.0:%d", port), "OUTBOX_CDC_ADMIN_ENABLED=true",
		"OUTBOX_CDC_ADMIN_TOKENS_0_NAME=ops", "OUTBOX_CDC_ADMIN_TOKENS_0_TOKEN="+operatorToken)
	waitFor(t, 20*time.Second, "the API", func() bool {
		code, _ := api(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/api/v1/status", port), operatorToken)
		return code == 200 || p.hasExited()
	})
	p.stop(t)
}

// Acceptance (issue 11, 6): no configured secret (the database password,
// the admin tokens, a user's password hash) appears in the status view, the
// API, the console's files, the logs, or `status`.
func TestAdminShowsNoSecret(t *testing.T) {
	const pgPassword = "Pg-Secr3t-Qw88-Nz41"
	e, addr := consoleEnv(t, func(db string) string {
		return strings.Replace(pg.URL(db), "postgres@", "postgres:"+pgPassword+"@", 1)
	})
	cfg := readFile(t, e.cfgPath)
	hash := regexp.MustCompile(`\$2a\$[^"]+`).FindString(cfg)
	secrets := []string{pgPassword, operatorToken, viewerToken, hash, annPassword}
	p := e.start()
	base := "http://" + addr
	waitFor(t, 20*time.Second, "the API", func() bool {
		code, _ := api(t, "GET", base+"/api/v1/status", viewerToken)
		return code == 200 || p.hasExited()
	})
	id := publish(t, e.pool, "com.example.secret")
	waitFor(t, 10*time.Second, "the event", func() bool { return hasID(e.readEvents(), id) })
	shown := map[string]string{}
	for _, path := range []string{"/api/v1/status", "/api/v1/sinks", "/api/v1/history", "/api/v1/session", "/api/v1/events", "/api/v1/events/" + id,
		"/api/v1/dead-letters", "/status", "/admin/", "/admin/console.js", "/admin/console.css", "/metrics"} {
		code, body := api(t, "GET", base+path, operatorToken)
		if code != 200 {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
		shown[path] = body
	}
	if !strings.Contains(shown["/api/v1/status"], `"url": "postgres://postgres:xxxxx@`) {
		t.Errorf("the status view does not show the effective config with the password masked:\n%s", shown["/api/v1/status"])
	}
	// A failed sign-in with a secret-looking password is logged without it.
	req, _ := http.NewRequest("POST", base+"/api/v1/session", strings.NewReader(`{"username":"ann","password":"`+annPassword+`x"}`))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	out, err := e.cli(t.Context(), "status", "--json")
	if err != nil {
		t.Errorf("status --json: %v\n%s", err, out)
	}
	shown["status --json"] = out
	p.stop(t)
	shown["the log"] = p.log()
	for where, text := range shown {
		for _, s := range secrets {
			if strings.Contains(text, s[:12]) {
				t.Errorf("%s shows the secret %s…:\n%s", where, s[:6], tail(text, 20))
			}
		}
	}
}

// Issue 13: the command line follows the conventions: each command's --help
// lists its own flags and exits 0 (without a config), flags come after
// positional arguments, shell completion is generated.
func TestCommandLineConventions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := func(env []string, args ...string) (string, int) {
		cmd := exec.CommandContext(ctx, binary, args...)
		cmd.Env = append(os.Environ(), "OUTBOX_CDC_CONFIG=")
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	flags := regexp.MustCompile(`--[a-z][a-z-]+`)
	for _, tc := range []struct {
		args       []string
		want, not  []string
		positional string
	}{
		{[]string{"run"}, []string{"--config"}, []string{"--json", "--yes", "--print-sql", "--since"}, ""},
		{[]string{"setup"}, []string{"--config", "--print-sql", "--skip-tables"}, []string{"--json", "--yes"}, ""},
		{[]string{"status"}, []string{"--config", "--json", "--token"}, []string{"--yes", "--print-sql"}, ""},
		{[]string{"teardown"}, []string{"--config", "--yes"}, []string{"--json", "--print-sql"}, ""},
		{[]string{"backfill"}, []string{"--since", "--from", "--to", "--ids", "--table", "--sink", "--dry-run", "--batch"}, []string{"--json", "--yes"}, ""},
		{[]string{"dlq"}, nil, []string{"--config", "--json"}, ""},
		{[]string{"dlq", "list"}, []string{"--config", "--sink", "--status", "--json"}, []string{"--all", "--by", "--yes"}, ""},
		{[]string{"dlq", "replay"}, []string{"--config", "--all", "--sink"}, []string{"--by", "--status"}, ""},
		{[]string{"dlq", "discard"}, []string{"--config", "--by"}, []string{"--all", "--status"}, ""},
		{[]string{"sinks", "pause"}, []string{"--config", "--addr", "--token"}, []string{"--sink", "--all"}, ""},
		{[]string{"events", "find"}, []string{"--aggregate-id", "--type", "--from", "--to", "--cursor"}, []string{"--sink", "--all"}, ""},
		{[]string{"events", "republish"}, []string{"--sink", "--token"}, []string{"--aggregate-id", "--all"}, ""},
		{[]string{"healthcheck"}, []string{"--addr", "--timeout"}, []string{"--json", "--yes"}, ""},
		{[]string{"inbox", "list"}, []string{"--url", "--table", "--consumer", "--source", "--state", "--json"}, []string{"--config", "--all"}, ""},
		{[]string{"inbox", "replay"}, []string{"--url", "--table", "--consumer", "--source", "--all"}, []string{"--config", "--state", "--json"}, ""},
	} {
		out, code := run(nil, append(tc.args, "--help")...)
		if code != 0 {
			t.Errorf("%v --help: exit %d\n%s", tc.args, code, out)
			continue
		}
		got := map[string]bool{}
		for _, f := range flags.FindAllString(out, -1) {
			got[f] = true
		}
		for _, w := range tc.want {
			if !got[w] {
				t.Errorf("%v --help does not list %s:\n%s", tc.args, w, out)
			}
		}
		for _, n := range tc.not {
			if got[n] {
				t.Errorf("%v --help lists %s, a flag of another command:\n%s", tc.args, n, out)
			}
		}
	}
	// A flag after the positional argument: the config is read (and here
	// missing), so it was taken as a flag, not refused as an argument.
	out, code := run(nil, "dlq", "show", "7", "--config", "/nonexistent/outbox-cdc.yaml")
	if code != 1 || !strings.Contains(out, "/nonexistent/outbox-cdc.yaml") {
		t.Errorf("dlq show 7 --config FILE: exit %d, want 1 naming the file:\n%s", code, out)
	}
	if out, code := run(nil, "dlq", "show", "seven"); code != 2 || !strings.Contains(out, `"seven" is not a dead-letter id`) {
		t.Errorf("dlq show seven: exit %d, want 2:\n%s", code, out)
	}
	if out, code := run(nil, "bogus"); code != 2 || !strings.Contains(out, `unknown command "bogus"`) {
		t.Errorf("an unknown command: exit %d, want 2:\n%s", code, out)
	}
	if out, code := run(nil, "run", "--bogus"); code != 2 || !strings.Contains(out, "unknown flag: --bogus") {
		t.Errorf("an unknown flag: exit %d, want 2:\n%s", code, out)
	}
	if out, code := run(nil); code != 2 || !strings.Contains(out, "Available Commands") && !strings.Contains(out, "Streaming:") {
		t.Errorf("no command: exit %d, want 2 with the usage:\n%s", code, out)
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		out, code := run(nil, "completion", shell)
		if code != 0 || !strings.Contains(out, "outbox-cdc") || len(out) < 500 {
			t.Errorf("completion %s: exit %d, %d bytes", shell, code, len(out))
		}
	}
	// Every shell's script asks the binary (cobra's __complete): it completes
	// command names and a command's flags.
	if out, code := run(nil, "__complete", "dl"); code != 0 || !strings.Contains(out, "dlq") {
		t.Errorf("completion of \"outbox-cdc dl\": exit %d\n%s", code, out)
	}
	if out, code := run(nil, "__complete", "dlq", "replay", "--"); code != 0 || !strings.Contains(out, "--all") || strings.Contains(out, "--print-sql") {
		t.Errorf("completion of \"outbox-cdc dlq replay --\": exit %d\n%s", code, out)
	}
	if out, code := run(nil, "version"); code != 0 || !strings.HasPrefix(out, "outbox-cdc ") {
		t.Errorf("version: exit %d\n%s", code, out)
	}
}
