package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/outbox-cdc/outbox-cdc/config"
)

// Role is what a principal may do: a viewer reads, an operator also
// mutates (pause, resume, republish, replay, discard).
type Role int

// Roles, in increasing power.
const (
	Viewer Role = iota + 1
	Operator
)

func (r Role) String() string {
	if r == Operator {
		return "operator"
	}
	return "viewer"
}

// Principal is who made a request.
type Principal struct {
	// Name is the token's or the user's name ("anonymous" without
	// authentication).
	Name string `json:"name"`
	// Role is viewer or operator.
	Role Role `json:"-"`
	// Method is how the request was authenticated: "token", "basic",
	// "session" or "none".
	Method string `json:"method"`
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// principalOf returns the request's principal (the zero Principal when
// none).
func principalOf(r *http.Request) Principal {
	p, _ := r.Context().Value(principalKey{}).(Principal)
	return p
}

// SessionCookie is the name of the console's session cookie.
const SessionCookie = "outbox_cdc_session"

// CSRFHeader carries the session's CSRF token on the console's mutating
// requests.
const CSRFHeader = "X-CSRF-Token"

// authenticator checks credentials. Safe for concurrent use.
type authenticator struct {
	tokens []tokenCred
	users  map[string]userCred
	open   bool // no credentials configured: everyone is an operator
	ttl    time.Duration

	mu       sync.Mutex
	sessions map[string]*session        // by sha256 of the cookie value
	verified map[[32]byte]verifiedBasic // bcrypt results, by sha256 of name:password
}

type tokenCred struct {
	name   string
	role   Role
	digest [32]byte
}

type userCred struct {
	name string
	role Role
	hash []byte
}

type session struct {
	p       Principal
	csrf    string
	expires time.Time
}

type verifiedBasic struct {
	p       Principal
	expires time.Time
}

// basicCacheTTL is how long a bcrypt check of HTTP basic credentials is
// remembered, so that a script's requests do not each pay for bcrypt.
const basicCacheTTL = 5 * time.Minute

func roleOf(r config.AdminRole) Role {
	if r == config.RoleOperator {
		return Operator
	}
	return Viewer
}

func newAuthenticator(a config.Admin) (*authenticator, error) {
	au := &authenticator{users: map[string]userCred{}, open: !a.HasAuth(), ttl: a.SessionTTL,
		sessions: map[string]*session{}, verified: map[[32]byte]verifiedBasic{}}
	if au.ttl <= 0 {
		au.ttl = config.DefaultAdminSessionTTL
	}
	for _, t := range a.Tokens {
		secret, err := t.Secret()
		if err != nil {
			return nil, err
		}
		au.tokens = append(au.tokens, tokenCred{name: t.Name, role: roleOf(t.Role), digest: sha256.Sum256([]byte(secret))})
	}
	for _, u := range a.Users {
		au.users[u.Name] = userCred{name: u.Name, role: roleOf(u.Role), hash: []byte(u.PasswordHash)}
	}
	return au, nil
}

// errBadCredentials is the answer to a wrong token, name or password; it
// never says which part was wrong.
var errBadCredentials = errors.New("the token, or the user name and password, are not valid")

// token checks a bearer token in constant time against every token.
func (au *authenticator) token(secret string) (Principal, bool) {
	d := sha256.Sum256([]byte(secret))
	var found Principal
	ok := false
	for _, t := range au.tokens {
		if subtle.ConstantTimeCompare(d[:], t.digest[:]) == 1 {
			found, ok = Principal{Name: t.name, Role: t.role, Method: "token"}, true
		}
	}
	return found, ok
}

// password checks a user's password against its bcrypt hash; a success is
// remembered for basicCacheTTL.
func (au *authenticator) password(name, password string) (Principal, bool) {
	key := sha256.Sum256([]byte(name + "\x00" + password))
	now := time.Now()
	au.mu.Lock()
	v, hit := au.verified[key]
	au.mu.Unlock()
	if hit && now.Before(v.expires) {
		return v.p, true
	}
	u, ok := au.users[name]
	if !ok {
		// Spend the time a real check takes, so that a name's existence
		// does not show.
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return Principal{}, false
	}
	if bcrypt.CompareHashAndPassword(u.hash, []byte(password)) != nil {
		return Principal{}, false
	}
	p := Principal{Name: u.name, Role: u.role, Method: "basic"}
	au.mu.Lock()
	if len(au.verified) > 1000 {
		clear(au.verified)
	}
	au.verified[key] = verifiedBasic{p: p, expires: now.Add(basicCacheTTL)}
	au.mu.Unlock()
	return p, true
}

// dummyHash returns a bcrypt hash of a random password at the default cost,
// made on first use: computing it costs about 70 ms of CPU, which every
// command would otherwise pay at start.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte(randomString(16)), bcrypt.DefaultCost)
	return h
})

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// credentials authenticates the credentials a request carries: a bearer
// token, HTTP basic, or a session cookie. ok is false when it carries none
// that are valid; cookie tells that the session cookie authenticated it.
func (au *authenticator) credentials(r *http.Request) (p Principal, ok bool, sess *session) {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, found := strings.CutPrefix(h, "Bearer "); found {
			p, ok = au.token(strings.TrimSpace(t))
			return p, ok, nil
		}
		if name, pw, found := r.BasicAuth(); found {
			p, ok = au.password(name, pw)
			return p, ok, nil
		}
		return Principal{}, false, nil
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		if s := au.session(c.Value); s != nil {
			return s.p, true, s
		}
	}
	return Principal{}, false, nil
}

// login starts a session for p and returns the cookie value and the CSRF
// token.
func (au *authenticator) login(p Principal) (cookie, csrf string, expires time.Time) {
	cookie, csrf = randomString(32), randomString(32)
	expires = time.Now().Add(au.ttl)
	key := sessionKey(cookie)
	au.mu.Lock()
	now := time.Now()
	for k, s := range au.sessions {
		if now.After(s.expires) {
			delete(au.sessions, k)
		}
	}
	au.sessions[key] = &session{p: Principal{Name: p.Name, Role: p.Role, Method: "session"}, csrf: csrf, expires: expires}
	au.mu.Unlock()
	return cookie, csrf, expires
}

func (au *authenticator) logout(cookie string) {
	au.mu.Lock()
	delete(au.sessions, sessionKey(cookie))
	au.mu.Unlock()
}

func (au *authenticator) session(cookie string) *session {
	au.mu.Lock()
	defer au.mu.Unlock()
	s, ok := au.sessions[sessionKey(cookie)]
	if !ok {
		return nil
	}
	if time.Now().After(s.expires) {
		delete(au.sessions, sessionKey(cookie))
		return nil
	}
	return s
}

func sessionKey(cookie string) string {
	d := sha256.Sum256([]byte(cookie))
	return string(d[:])
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

// guard authenticates every request and authorizes mutations: GET and HEAD
// need a viewer, anything else an operator. A browser's cross-origin
// mutation is refused (Sec-Fetch-Site, Origin), and a mutation
// authenticated by the session cookie must carry the session's CSRF token.
func (s *Handler) guard(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin request refused: the admin API takes mutations only from its own console or from clients that are not browsers")
	}))
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok, sess := s.auth.credentials(r)
		switch {
		case ok:
		case s.auth.open && r.Header.Get("Authorization") == "":
			p = Principal{Name: "anonymous", Role: Operator, Method: "none"}
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="outbox-cdc"`)
			msg := "authentication required: send Authorization: Bearer TOKEN (admin.tokens) or HTTP basic (admin.users)"
			if r.Header.Get("Authorization") != "" {
				msg = errBadCredentials.Error()
			}
			writeError(w, http.StatusUnauthorized, msg)
			return
		}
		mutation := r.Method != http.MethodGet && r.Method != http.MethodHead
		if mutation && p.Role < Operator {
			writeError(w, http.StatusForbidden, fmt.Sprintf("%s %q is a viewer: this needs the operator role", p.Method, p.Name))
			s.audit(r, p, http.StatusForbidden, "refused: viewer")
			return
		}
		if mutation && sess != nil && subtle.ConstantTimeCompare([]byte(r.Header.Get(CSRFHeader)), []byte(sess.csrf)) != 1 {
			writeError(w, http.StatusForbidden, "missing or wrong "+CSRFHeader+" header: the console sends the token its sign-in returned")
			s.audit(r, p, http.StatusForbidden, "refused: CSRF token")
			return
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	}))
}
