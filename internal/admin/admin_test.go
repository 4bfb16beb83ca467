package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/crypto/bcrypt"

	"github.com/outbox-cdc/outbox-cdc/config"
)

// Acceptance (issue 11, 5): the OpenAPI document validates against the
// OpenAPI 3.1 schema (testdata, from the specification's repository).
func TestOpenAPIDocumentValidates(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/openapi-3.1-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	meta, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("openapi-3.1.json", meta); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("openapi-3.1.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(OpenAPI()))
	if err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Fatalf("openapi.json does not validate against the OpenAPI 3.1 schema:\n%v", err)
	}
}

type openAPI struct {
	Paths map[string]map[string]struct {
		Parameters []struct {
			Name, In string
			Required bool
		}
		Security *[]any
	}
	Components struct {
		Schemas map[string]any
	}
}

func parseDoc(t *testing.T) openAPI {
	t.Helper()
	var d openAPI
	if err := json.Unmarshal(OpenAPI(), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// Acceptance (issue 11, 5): every route is documented and nothing
// documented is not served; every path parameter is declared; every
// schema reference resolves.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	d := parseDoc(t)
	var documented, served []string
	for path, ops := range d.Paths {
		for method, op := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
			for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
				if !slices.ContainsFunc(op.Parameters, func(p struct {
					Name, In string
					Required bool
				}) bool {
					return p.Name == m[1] && p.In == "path" && p.Required
				}) {
					t.Errorf("%s %s: path parameter %s is not declared", method, path, m[1])
				}
			}
		}
	}
	h := &Handler{}
	for _, r := range h.routes() {
		served = append(served, r.method+" "+r.pattern)
		if r.public {
			if op := d.Paths[r.pattern][strings.ToLower(r.method)]; op.Security == nil || len(*op.Security) != 0 {
				t.Errorf("%s %s needs no authentication but the document does not say so (security: [])", r.method, r.pattern)
			}
		}
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("documented routes differ from served routes:\ndocumented: %q\nserved:     %q", documented, served)
	}
	for _, ref := range regexp.MustCompile(`"#/components/schemas/([A-Za-z]+)"`).FindAllStringSubmatch(string(OpenAPI()), -1) {
		if _, ok := d.Components.Schemas[ref[1]]; !ok {
			t.Errorf("schema %s is referenced but not defined", ref[1])
		}
	}
}

// fakeControl is a Control with one sink.
type fakeControl struct {
	mu     sync.Mutex
	paused bool
}

func (f *fakeControl) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Sink{Name: "audit", Type: "file", Paused: f.paused}
	s.State = StateOf(s)
	return Status{Role: "streaming", Sinks: []Sink{s}}
}

func (f *fakeControl) PauseSink(name string) error { return f.set(name, true) }

func (f *fakeControl) ResumeSink(name string) error { return f.set(name, false) }

func (f *fakeControl) set(name string, p bool) error {
	if name != "audit" {
		return fmt.Errorf("%w: %q", ErrUnknownSink, name)
	}
	f.mu.Lock()
	f.paused = p
	f.mu.Unlock()
	return nil
}

const (
	viewerToken   = "viewer-token-0123456789"
	operatorToken = "operator-token-0123456789"
	userPassword  = "Pw-of-ann-0123"
)

func testHandler(t *testing.T) (*Handler, *fakeControl) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(userPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Admin: config.Admin{Enabled: true,
		Tokens: []config.AdminToken{{Name: "ci", Role: config.RoleViewer, Token: viewerToken}, {Name: "ops", Role: config.RoleOperator, Token: operatorToken}},
		Users:  []config.AdminUser{{Name: "ann", Role: config.RoleOperator, PasswordHash: string(hash)}},
	}}
	ctl := &fakeControl{}
	h, err := New(Options{Config: cfg, Control: ctl})
	if err != nil {
		t.Fatal(err)
	}
	return h, ctl
}

func do(h http.Handler, method, path string, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// concrete fills a route's path parameters.
func concrete(p string) string {
	return strings.NewReplacer("{name}", "audit", "{id}", "1").Replace(p)
}

// Acceptance (issue 11, 4): every route answers 401 without credentials
// (the sign-in too, for want of valid ones), and a viewer gets 403 on
// every mutation.
func TestEveryRouteNeedsCredentials(t *testing.T) {
	t.Parallel()
	h, ctl := testHandler(t)
	for _, r := range h.routes() {
		path := concrete(r.pattern)
		body := ""
		if r.public {
			body = "{}"
		}
		if w := do(h, r.method, path, body, nil); w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s without credentials: %d, want 401: %s", r.method, path, w.Code, w.Body)
		}
		if w := do(h, r.method, path, body, map[string]string{"Authorization": "Bearer wrong-token-0123456789"}); w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong token: %d, want 401", r.method, path, w.Code)
		}
		if r.method == "GET" || r.public {
			continue
		}
		if w := do(h, r.method, path, "", map[string]string{"Authorization": "Bearer " + viewerToken}); w.Code != http.StatusForbidden {
			t.Errorf("%s %s as a viewer: %d, want 403: %s", r.method, path, w.Code, w.Body)
		}
	}
	if ctl.paused {
		t.Fatal("a refused request paused the sink")
	}
	if w := do(h, "GET", "/api/v1/nowhere", "", map[string]string{"Authorization": "Bearer " + viewerToken}); w.Code != http.StatusNotFound {
		t.Errorf("an undocumented route answers %d, want 404", w.Code)
	}
	// The guard of /status.
	status := h.Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	if w := do(status, "GET", "/status", "", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("/status without credentials: %d, want 401", w.Code)
	}
	if w := do(status, "GET", "/status", "", map[string]string{"Authorization": "Bearer " + viewerToken}); w.Code != 200 {
		t.Errorf("/status with a viewer token: %d, want 200", w.Code)
	}
}

// Acceptance (issue 11, 4): an operator's token and HTTP basic work; a
// cross-site form post is refused even with valid credentials (a browser
// sends remembered basic credentials and cookies along); a session
// mutation needs its CSRF token.
func TestMutationsAndCSRF(t *testing.T) {
	t.Parallel()
	h, ctl := testHandler(t)
	if w := do(h, "POST", "/api/v1/sinks/audit/pause", "", map[string]string{"Authorization": "Bearer " + operatorToken}); w.Code != 200 || !ctl.paused {
		t.Fatalf("pause as an operator: %d %s", w.Code, w.Body)
	}
	basic := "Basic " + basicAuth("ann", userPassword)
	if w := do(h, "POST", "/api/v1/sinks/audit/resume", "", map[string]string{"Authorization": basic}); w.Code != 200 || ctl.paused {
		t.Fatalf("resume with basic: %d %s", w.Code, w.Body)
	}
	if w := do(h, "POST", "/api/v1/sinks/nosuch/pause", "", map[string]string{"Authorization": basic}); w.Code != 404 {
		t.Errorf("pause of an unknown sink: %d, want 404", w.Code)
	}
	crossSite := map[string]string{"Authorization": basic, "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"}
	if w := do(h, "POST", "/api/v1/sinks/audit/pause", "x=1", crossSite); w.Code != http.StatusForbidden || ctl.paused {
		t.Errorf("cross-site form post: %d (paused %v), want 403: %s", w.Code, ctl.paused, w.Body)
	}
	delete(crossSite, "Sec-Fetch-Site") // an older browser: Origin only
	if w := do(h, "POST", "/api/v1/sinks/audit/pause", "x=1", crossSite); w.Code != http.StatusForbidden || ctl.paused {
		t.Errorf("cross-origin form post (Origin only): %d, want 403", w.Code)
	}

	// The console's session.
	w := do(h, "POST", "/api/v1/session", `{"token":"`+operatorToken+`"}`, map[string]string{"Content-Type": "application/json"})
	if w.Code != 200 {
		t.Fatalf("sign-in: %d %s", w.Code, w.Body)
	}
	var info sessionInfo
	json.Unmarshal(w.Body.Bytes(), &info)
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode || info.CSRFToken == "" {
		t.Fatalf("sign-in: cookie %+v, csrf %q", cookies, info.CSRFToken)
	}
	cookie := cookies[0].Name + "=" + cookies[0].Value
	if w := do(h, "GET", "/api/v1/status", "", map[string]string{"Cookie": cookie}); w.Code != 200 {
		t.Errorf("GET with the session: %d", w.Code)
	}
	if w := do(h, "POST", "/api/v1/sinks/audit/pause", "", map[string]string{"Cookie": cookie}); w.Code != http.StatusForbidden || ctl.paused {
		t.Errorf("session mutation without the CSRF token: %d, want 403", w.Code)
	}
	if w := do(h, "POST", "/api/v1/sinks/audit/pause", "", map[string]string{"Cookie": cookie, CSRFHeader: "wrong"}); w.Code != http.StatusForbidden || ctl.paused {
		t.Errorf("session mutation with a wrong CSRF token: %d, want 403", w.Code)
	}
	if w := do(h, "POST", "/api/v1/sinks/audit/pause", "", map[string]string{"Cookie": cookie, CSRFHeader: info.CSRFToken, "Sec-Fetch-Site": "same-origin"}); w.Code != 200 || !ctl.paused {
		t.Errorf("session mutation with the CSRF token: %d %s", w.Code, w.Body)
	}
	if w := do(h, "DELETE", "/api/v1/session", "", map[string]string{"Cookie": cookie, CSRFHeader: info.CSRFToken}); w.Code != 200 {
		t.Errorf("sign-out: %d", w.Code)
	}
	if w := do(h, "GET", "/api/v1/status", "", map[string]string{"Cookie": cookie}); w.Code != http.StatusUnauthorized {
		t.Errorf("GET after sign-out: %d, want 401", w.Code)
	}
	if w := do(h, "POST", "/api/v1/session", `{"username":"ann","password":"wrong"}`, nil); w.Code != http.StatusUnauthorized {
		t.Errorf("sign-in with a wrong password: %d, want 401", w.Code)
	}
}

// Security headers: a CSP without inline script, frame denial.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	h, _ := testHandler(t)
	for _, path := range []string{"/admin/", "/admin/console.js", "/api/v1/status"} {
		w := do(h, "GET", path, "", nil)
		csp := w.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if w.Header().Get("X-Frame-Options") != "DENY" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", path, w.Header())
		}
	}
	w := do(h, "GET", "/admin/", "", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `<script src="/admin/console.js" defer></script>`) {
		t.Fatalf("/admin/: %d %s", w.Code, w.Body)
	}
	// No inline script or style: every <script> has a src, no on* attribute
	// and no style attribute.
	body := w.Body.String()
	for _, bad := range []*regexp.Regexp{regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`), regexp.MustCompile(`\son[a-z]+=`), regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`https?://`)} {
		if bad.MatchString(body) {
			t.Errorf("index.html has %s", bad)
		}
	}
}

func TestCheckRefusesOpenNonLoopback(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{HTTP: config.HTTP{Addr: "0.0.0.0:9187"}, Admin: config.Admin{Enabled: true}}
	if err := Check(t.Context(), cfg); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Check on 0.0.0.0 without auth: %v", err)
	}
	cfg.HTTP.Addr = "127.0.0.1:9187"
	if err := Check(t.Context(), cfg); err != nil {
		t.Fatalf("Check on loopback: %v", err)
	}
	cfg.HTTP.Addr = "0.0.0.0:9187"
	cfg.Admin.Tokens = []config.AdminToken{{Name: "a", Token: operatorToken}}
	if err := Check(t.Context(), cfg); err != nil {
		t.Fatalf("Check with a token: %v", err)
	}
}

func basicAuth(user, pw string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pw)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}
