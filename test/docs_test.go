package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
)

// needDocsToolchain skips on a laptop without python3 (CI fails instead):
// scripts/docs.sh installs MkDocs from PyPI into the cache on first use.
func needDocsToolchain(t *testing.T) {
	t.Helper()
	needTool(t, "python3", "python3 and python3-venv")
	needTool(t, "make", "make")
}

// TestDocsSite is the docs' acceptance: `make docs-build` passes in strict
// mode (a broken link or anchor is a warning, so a failure); `make
// docs-serve` serves the site on localhost:8080, where every page and every
// internal link (anchors included) is crawled; the search index exists and
// covers every page; no page loads a script, stylesheet, font or image from
// another host (the site works offline), and the toolchain's
// requirements.txt is not published.
func TestDocsSite(t *testing.T) {
	needDocsToolchain(t)
	root, _ := filepath.Abs("..")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "make", "docs-build")
	build.Dir = root
	build.Env = append(os.Environ(), "NO_MKDOCS_2_WARNING=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make docs-build: %v\n%s", err, out)
	}
	for _, leak := range []string{"requirements.txt", "requirements-plots.txt", "benchmarks/summary.md"} {
		if _, err := os.Stat(filepath.Join(root, "site", leak)); err == nil {
			t.Errorf("site/%s is published", leak)
		}
	}

	// make docs-serve on localhost:8080; on a machine where something
	// else holds 8080, on a free port (DOCS_ADDR), said in the log.
	addr := "localhost:8080"
	if l, err := net.Listen("tcp", "127.0.0.1:8080"); err != nil {
		port, perr := harness.FreePort()
		if perr != nil {
			t.Fatal(perr)
		}
		addr = fmt.Sprintf("localhost:%d", port)
		t.Logf("port 8080 is taken (%v): serving on %s", err, addr)
	} else {
		l.Close()
	}
	var log bytes.Buffer
	serve := exec.Command("make", "docs-serve", "DOCS_ADDR="+addr)
	serve.Dir = root
	serve.Env = append(os.Environ(), "NO_MKDOCS_2_WARNING=1", "DOCS_ADDR="+addr)
	serve.Stdout, serve.Stderr = &log, &log
	serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-serve.Process.Pid, syscall.SIGTERM)
		_ = serve.Wait()
	}()
	// mkdocs serve serves under site_url's path and redirects / there.
	base := "http://" + addr + "/"
	waitFor(t, 2*time.Minute, "make docs-serve answering on "+addr, func() bool {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		base = resp.Request.URL.String()
		return resp.StatusCode == http.StatusOK
	})

	c := crawler{t: t, base: base, pages: map[string]*page{}, client: &http.Client{Timeout: 30 * time.Second}}
	c.crawl()
	if t.Failed() {
		t.Logf("mkdocs serve log:\n%s", tail(log.String(), 40))
	}

	for _, want := range []string{"quickstart/", "concepts/", "writing-events/", "reference/configuration/", "troubleshooting/",
		"benchmarks/", "sinks/kafka/", "sinks/nats/", "sinks/redis/", "operations/", "admin-console/", "reference/cli/"} {
		if c.pages[base+want] == nil {
			t.Errorf("page %s is not reachable by links from the home page", want)
		}
	}

	// Search: the index exists and covers every page crawled.
	body, status := c.get(base + "search/search_index.json")
	if status != http.StatusOK {
		t.Fatalf("search/search_index.json: %d", status)
	}
	var index struct {
		Docs []struct {
			Location, Title, Text string
		} `json:"docs"`
	}
	if err := json.Unmarshal(body, &index); err != nil {
		t.Fatalf("search index: %v", err)
	}
	indexed := map[string]bool{}
	for _, d := range index.Docs {
		loc, _, _ := strings.Cut(d.Location, "#")
		indexed[base+loc] = true
	}
	for u, p := range c.pages {
		if p.html && !indexed[u] && !strings.HasSuffix(u, "404.html") {
			t.Errorf("page %s is not in the search index", u)
		}
	}
	if !bytes.Contains(body, []byte("wal_level")) || !bytes.Contains(body, []byte("OUTBOX_CDC_POSTGRES_URL")) {
		t.Error("the search index does not hold the pages' text (wal_level, OUTBOX_CDC_POSTGRES_URL)")
	}
	t.Logf("crawled %d pages and files on %s; %d search entries", len(c.pages), addr, len(index.Docs))
}

type page struct {
	html bool
	ids  map[string]bool
}

type crawler struct {
	t      *testing.T
	base   string
	client *http.Client
	pages  map[string]*page
}

var (
	refAttr = regexp.MustCompile(`\s(href|src)="([^"]*)"`)
	idAttr  = regexp.MustCompile(`\sid="([^"]*)"`)
	tagOf   = regexp.MustCompile(`<(\w+)[^<>]*$`)
)

func (c *crawler) get(u string) ([]byte, int) {
	resp, err := c.client.Get(u)
	if err != nil {
		c.t.Errorf("GET %s: %v", u, err)
		return nil, 0
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Errorf("GET %s: %v", u, err)
	}
	return b, resp.StatusCode
}

// crawl fetches every page and file linked from the home page, then checks
// every internal link's target and anchor.
func (c *crawler) crawl() {
	type link struct{ from, to, tag string }
	var links []link
	queue := []string{c.base}
	c.pages[c.base] = nil
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		body, status := c.get(u)
		if status != http.StatusOK {
			c.t.Errorf("GET %s: status %d", u, status)
			c.pages[u] = &page{}
			continue
		}
		p := &page{ids: map[string]bool{}}
		c.pages[u] = p
		if !strings.HasSuffix(u, "/") && !strings.HasSuffix(u, ".html") {
			continue // an asset
		}
		p.html = true
		for _, m := range idAttr.FindAllStringSubmatch(string(body), -1) {
			p.ids[html.UnescapeString(m[1])] = true
		}
		for _, m := range refAttr.FindAllStringSubmatchIndex(string(body), -1) {
			raw := html.UnescapeString(string(body[m[4]:m[5]]))
			tag := ""
			if t := tagOf.FindStringSubmatch(string(body[max(0, m[0]-300):m[0]])); t != nil {
				tag = t[1]
			}
			ref, err := url.Parse(raw)
			if err != nil {
				c.t.Errorf("%s: bad link %q", u, raw)
				continue
			}
			abs := mustParse(u).ResolveReference(ref)
			if !strings.HasPrefix(abs.String(), c.base) {
				// Another host: fine for a link a reader follows, never
				// for something the page loads (offline reading).
				if (abs.Scheme == "http" || abs.Scheme == "https") && tag != "a" {
					c.t.Errorf("%s loads %s from another host (<%s>): the site must work offline", u, abs, tag)
				}
				continue
			}
			links = append(links, link{from: u, to: abs.String(), tag: tag})
			abs.Fragment = ""
			target := abs.String()
			if _, seen := c.pages[target]; !seen {
				c.pages[target] = nil
				queue = append(queue, target)
			}
		}
	}
	for _, l := range links {
		target, frag, _ := strings.Cut(l.to, "#")
		p := c.pages[target]
		if p == nil || frag == "" || !p.html {
			continue
		}
		if f, err := url.PathUnescape(frag); err == nil {
			frag = f
		}
		if !p.ids[frag] {
			c.t.Errorf("%s links to %s: no element with id %q there", l.from, l.to, frag)
		}
	}
}

func mustParse(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestBenchPlotsUpToDate draws the benchmark figures from the run checked
// in (docs/benchmarks/run.txt) and compares them with the ones the docs
// show: the plots are reproducible, so a run.txt refreshed without
// `make bench-plots` fails here.
func TestBenchPlotsUpToDate(t *testing.T) {
	needDocsToolchain(t)
	root, _ := filepath.Abs("..")
	out := t.TempDir()
	cmd := exec.Command("bash", "scripts/docs.sh", "plots")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "BENCH_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/docs.sh plots: %v\n%s", err, b)
	}
	for _, f := range []string{"throughput.svg", "latency.svg", "summary.md"} {
		got := readFile(t, filepath.Join(out, f))
		want := readFile(t, filepath.Join(root, "docs", "benchmarks", f))
		if got != want {
			t.Errorf("docs/benchmarks/%s is not what scripts/bench-plots.py draws from docs/benchmarks/run.txt: run make bench-plots", f)
		}
	}
}
