package test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/schema"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/outbox-cdc/outbox-cdc/config"
	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

// The deployment kit is checked here without a container engine: what a
// `docker compose up` would read is validated with the tools each file is
// meant for.

// needTool returns the path of a command, failing under CI and skipping on a
// laptop without it.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if harness.Require(name) {
			t.Fatalf("%s is not installed (%s; scripts/install-test-deps.sh installs it)", name, pkg)
		}
		t.Skipf("%s is not installed (%s)", name, pkg)
	}
	return p
}

// TestComposeStack validates docker-compose.yml against the Compose
// Specification's JSON schema (as compose-go, the reference implementation
// docker compose uses, ships it), loads it as docker compose would, and
// checks that every mounted file exists and is what its service expects:
// outbox-cdc's config loads with config.Load, Prometheus' config and rules
// pass promtool at the paths they are mounted at, Grafana's provisioning
// parses and points at what is mounted.
func TestComposeStack(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "docker-compose.yml")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}

	// The schema alone first, so that its message is the one reported.
	var model map[string]any
	if err := yaml.Unmarshal(src, &model); err != nil {
		t.Fatalf("docker-compose.yml is not YAML: %v", err)
	}
	if err := schema.Validate(model); err != nil {
		t.Fatalf("docker-compose.yml does not validate against the Compose Specification schema: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	project, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: src}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("outbox-cdc", true) })
	if err != nil {
		t.Fatalf("docker compose would refuse docker-compose.yml: %v", err)
	}
	for _, want := range []string{"postgres", "kafka", "redis", "nats", "outbox-cdc-setup", "outbox-cdc", "producer", "prometheus", "grafana"} {
		if _, ok := project.Services[want]; !ok {
			t.Errorf("docker-compose.yml has no service %q", want)
		}
	}

	// Every bind mount's source exists; each service's mounts are laid out
	// under a directory of the test as the container would see them.
	mounted := map[string]string{} // service → root of its container files
	for name, svc := range project.AllServices() {
		croot := t.TempDir()
		mounted[name] = croot
		if svc.Build != nil {
			for _, p := range []string{svc.Build.Context, filepath.Join(svc.Build.Context, svc.Build.Dockerfile)} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("service %s builds from %s: %v", name, p, err)
				}
			}
		}
		for _, v := range svc.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			st, err := os.Stat(v.Source)
			if err != nil {
				t.Errorf("service %s mounts %s: %v", name, v.Source, err)
				continue
			}
			if !strings.HasPrefix(v.Source, root+string(os.PathSeparator)) {
				t.Errorf("service %s mounts %s, outside the repository", name, v.Source)
				continue
			}
			dst := filepath.Join(croot, v.Target)
			if st.IsDir() {
				if err := os.CopyFS(dst, os.DirFS(v.Source)); err != nil {
					t.Fatal(err)
				}
				continue
			}
			b, err := os.ReadFile(v.Source)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
				t.Fatal(err)
			}
		}
	}

	t.Run("outbox-cdc config loads", func(t *testing.T) {
		for _, name := range []string{"outbox-cdc-setup", "outbox-cdc"} {
			svc := project.Services[name]
			var environ []string
			cfgPath := ""
			for k, v := range svc.Environment {
				if v == nil {
					continue
				}
				if k == "OUTBOX_CDC_CONFIG" {
					cfgPath = *v
					continue
				}
				environ = append(environ, k+"="+*v)
			}
			if cfgPath == "" {
				t.Fatalf("service %s sets no OUTBOX_CDC_CONFIG", name)
			}
			var warnings []string
			cfg, err := config.Load(filepath.Join(mounted[name], cfgPath), environ, func(s string) { warnings = append(warnings, s) })
			if err != nil {
				t.Fatalf("service %s: the config mounted at %s does not load: %v", name, cfgPath, err)
			}
			if len(warnings) > 0 {
				t.Errorf("service %s: config warnings: %q", name, warnings)
			}
			types := map[config.SinkType]bool{}
			for _, s := range cfg.Sinks {
				types[s.Type] = true
			}
			for _, want := range []config.SinkType{config.SinkKafka, config.SinkNATS, config.SinkRedis} {
				if !types[want] {
					t.Errorf("service %s: the config has no %s sink", name, want)
				}
			}
			// Prometheus must be able to reach the HTTP server.
			if name == "outbox-cdc" && !strings.HasPrefix(cfg.HTTP.Addr, "0.0.0.0:") {
				t.Errorf("http.addr is %q: Prometheus in another container cannot scrape it", cfg.HTTP.Addr)
			}
		}
	})

	t.Run("promtool", func(t *testing.T) {
		promtool := needTool(t, "promtool", "Debian package prometheus")
		dir := filepath.Join(mounted["prometheus"], "etc", "prometheus")
		for _, args := range [][]string{
			{"check", "config", filepath.Join(dir, "prometheus.yml")},
			{"check", "rules", filepath.Join(dir, "alerts.yml")},
			{"test", "rules", filepath.Join(root, "deploy", "prometheus", "alerts_test.yml")},
		} {
			out, err := exec.Command(promtool, args...).CombinedOutput()
			if err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		// The scrape target is the outbox-cdc service's HTTP port.
		b := readFile(t, filepath.Join(dir, "prometheus.yml"))
		if !strings.Contains(b, `"outbox-cdc:9187"`) {
			t.Errorf("prometheus.yml does not scrape outbox-cdc:9187")
		}
	})

	t.Run("grafana provisioning", func(t *testing.T) {
		gdir := mounted["grafana"]
		var ds struct {
			APIVersion  int `yaml:"apiVersion"`
			Datasources []struct {
				Name, Type, URL, UID string
			} `yaml:"datasources"`
		}
		yamlFile(t, filepath.Join(gdir, "etc/grafana/provisioning/datasources/prometheus.yml"), &ds)
		if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
			t.Fatalf("datasource provisioning: %+v", ds)
		}
		if u := ds.Datasources[0].URL; u != "http://prometheus:9090" {
			t.Errorf("datasource url %q is not the prometheus service", u)
		}
		var dp struct {
			APIVersion int `yaml:"apiVersion"`
			Providers  []struct {
				Type    string
				Options struct{ Path string }
			} `yaml:"providers"`
		}
		yamlFile(t, filepath.Join(gdir, "etc/grafana/provisioning/dashboards/outbox-cdc.yml"), &dp)
		if dp.APIVersion != 1 || len(dp.Providers) != 1 || dp.Providers[0].Type != "file" {
			t.Fatalf("dashboard provisioning: %+v", dp)
		}
		dashDir := filepath.Join(gdir, dp.Providers[0].Options.Path)
		files, _ := filepath.Glob(filepath.Join(dashDir, "*.json"))
		if len(files) == 0 {
			t.Fatalf("no dashboard is mounted where the provider reads (%s)", dp.Providers[0].Options.Path)
		}
		for _, f := range files {
			var d struct{ UID, Title string }
			if err := json.Unmarshal([]byte(readFile(t, f)), &d); err != nil || d.UID == "" || d.Title == "" {
				t.Errorf("dashboard %s: %v (uid %q, title %q)", f, err, d.UID, d.Title)
			}
		}
	})

	t.Run("producer script", func(t *testing.T) {
		out, err := exec.Command("sh", "-n", filepath.Join(mounted["producer"], "producer.sh")).CombinedOutput()
		if err != nil {
			t.Errorf("producer.sh: %v\n%s", err, out)
		}
	})
}

func yamlFile(t *testing.T, path string, v any) {
	t.Helper()
	if err := yaml.Unmarshal([]byte(readFile(t, path)), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestSystemdUnit checks deploy/systemd/outbox-cdc.service with
// `systemd-analyze verify` (it needs no running systemd), with ExecStart
// pointed at the binary under test: any warning fails the test, since
// systemd ignores unknown keys with a warning only.
func TestSystemdUnit(t *testing.T) {
	sa := needTool(t, "systemd-analyze", "Debian package systemd")
	unit := readFile(t, "../deploy/systemd/outbox-cdc.service")
	const bin = "/usr/local/bin/outbox-cdc"
	if !strings.Contains(unit, "ExecStart="+bin+" run") {
		t.Fatalf("the unit does not start %s run", bin)
	}
	for _, want := range []string{"EnvironmentFile=", "NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit has no %s", want)
		}
	}
	path := filepath.Join(t.TempDir(), "outbox-cdc.service")
	writeFile(t, path, strings.ReplaceAll(unit, bin, binary))
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestDockerfileBuild runs the RUN lines of the Dockerfile's build stage as
// a plain shell build (with its ARG defaults and the build stage's WORKDIR
// replaced by the repository), then checks what the runtime stage needs: a
// static binary (no ELF interpreter, for a distroless/static base) whose
// version command shows the stamped values, a non-root USER and a
// HEALTHCHECK running `outbox-cdc healthcheck`.
func TestDockerfileBuild(t *testing.T) {
	src := readFile(t, "../Dockerfile")
	src = strings.ReplaceAll(src, "\\\n", " ")
	args := map[string]string{"VERSION": "v9.9.9-test", "COMMIT": "0123abc", "DATE": "2026-01-02T03:04:05Z"}
	out := t.TempDir()
	var runs []string
	stage := 0
	var user, health string
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		word, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(word) {
		case "FROM":
			stage++
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			if _, set := args[k]; !set {
				args[k] = v
			}
		case "RUN":
			if stage == 1 {
				runs = append(runs, rest)
			}
		case "USER":
			user = rest
		case "HEALTHCHECK":
			health = rest
		}
	}
	if stage < 2 {
		t.Fatalf("the Dockerfile has %d stages, want a build stage and a runtime stage", stage)
	}
	if len(runs) == 0 {
		t.Fatal("the Dockerfile's build stage has no RUN line")
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("the runtime stage runs as %q, want a non-root USER", user)
	}
	if !strings.Contains(health, `"healthcheck"`) {
		t.Errorf("HEALTHCHECK %q does not run outbox-cdc healthcheck", health)
	}
	expand := regexp.MustCompile(`\$\{(\w+)\}`)
	for _, r := range runs {
		r = expand.ReplaceAllStringFunc(r, func(m string) string { return args[m[2:len(m)-1]] })
		r = strings.ReplaceAll(r, "/out/", out+"/")
		cmd := exec.Command("sh", "-c", r)
		cmd.Dir = ".."
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("RUN %s: %v\n%s", r, err, b)
		}
	}
	bin := filepath.Join(out, "outbox-cdc")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("the build stage made no binary at /out/outbox-cdc: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("/out/outbox-cdc is dynamically linked (program header %v): it cannot run on distroless/static", p.Type)
		}
	}
	v, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("outbox-cdc version: %v\n%s", err, v)
	}
	for _, want := range []string{"outbox-cdc v9.9.9-test", "commit: 0123abc", "built: 2026-01-02T03:04:05Z"} {
		if !strings.Contains(string(v), want) {
			t.Errorf("outbox-cdc version printed\n%s\nwithout %q", v, want)
		}
	}
}
