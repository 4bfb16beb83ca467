package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Admin configures the admin console (/admin) and its JSON API (/api/v1),
// served on the HTTP server (http.addr). Both are off unless Enabled. With
// no tokens and no users anyone who reaches the address is an operator,
// which run accepts on a loopback address only (with a warning); on any
// other address it refuses to start. See docs/admin-console.md.
type Admin struct {
	// Enabled turns the console and the API on. Default false.
	Enabled bool `yaml:"enabled"`
	// Tokens are the bearer tokens the API and the console's sign-in accept
	// (Authorization: Bearer TOKEN). Each token's secret comes from token,
	// or from the environment (OUTBOX_CDC_ADMIN_TOKENS_0_TOKEN), or from
	// token_file. Default none.
	Tokens []AdminToken `yaml:"tokens"`
	// Users sign in with a name and a password, checked against a bcrypt
	// hash (HTTP basic for the API, the sign-in form for the console).
	// Default none.
	Users []AdminUser `yaml:"users"`
	// SessionTTL is how long a console sign-in lasts. Default 8h.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// QueryTimeout bounds each search of the outbox and dead-letter tables
	// the API runs (statement_timeout). Default 5s.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

// AdminToken is one bearer token of the admin API.
type AdminToken struct {
	// Name says who uses the token; every mutation is logged with it.
	// Required, unique among tokens and users.
	Name string `yaml:"name"`
	// Role is viewer (default: read only) or operator (may pause, resume,
	// republish, replay and discard).
	Role AdminRole `yaml:"role"`
	// Token is the secret, at least 16 characters; never logged nor shown.
	// Exactly one of token and token_file.
	Token string `yaml:"token"`
	// TokenFile is a file holding the secret (surrounding white space is
	// ignored), read at start: a mounted secret.
	TokenFile string `yaml:"token_file"`
}

// AdminUser is one user of the admin console and API.
type AdminUser struct {
	// Name is the user name. Required, unique among tokens and users.
	Name string `yaml:"name"`
	// Role is viewer (default) or operator; see AdminToken.Role.
	Role AdminRole `yaml:"role"`
	// PasswordHash is the bcrypt hash of the password ($2a$, $2b$ or $2y$,
	// as `outbox-cdc admin hash-password` or htpasswd -B writes it).
	// Required.
	PasswordHash string `yaml:"password_hash"`
}

// AdminRole is viewer or operator. Default viewer.
type AdminRole string

// Admin roles.
const (
	RoleViewer   AdminRole = "viewer"
	RoleOperator AdminRole = "operator"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *AdminRole) UnmarshalText(b []byte) error {
	if err := oneOf("role", string(b), string(RoleViewer), string(RoleOperator)); err != nil {
		return err
	}
	*r = AdminRole(b)
	return nil
}

// Defaults of the admin keys.
const (
	DefaultAdminSessionTTL   = 8 * time.Hour
	DefaultAdminQueryTimeout = 5 * time.Second
	// MinAdminTokenLength is the shortest token accepted.
	MinAdminTokenLength = 16
)

// HasAuth reports whether any token or user is configured.
func (a Admin) HasAuth() bool { return len(a.Tokens) > 0 || len(a.Users) > 0 }

// Secret returns the token's secret: Token, or the content of TokenFile
// without surrounding white space.
func (t AdminToken) Secret() (string, error) {
	if t.TokenFile == "" {
		return t.Token, nil
	}
	b, err := os.ReadFile(t.TokenFile)
	if err != nil {
		return "", fmt.Errorf("config: admin token %s: %w", t.Name, err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < MinAdminTokenLength {
		return "", fmt.Errorf("config: admin token %s: the token in %s is shorter than %d characters", t.Name, t.TokenFile, MinAdminTokenLength)
	}
	return s, nil
}

func (a *Admin) setDefaults() {
	dur(&a.SessionTTL, DefaultAdminSessionTTL)
	dur(&a.QueryTimeout, DefaultAdminQueryTimeout)
	for i := range a.Tokens {
		if a.Tokens[i].Role == "" {
			a.Tokens[i].Role = RoleViewer
		}
	}
	for i := range a.Users {
		if a.Users[i].Role == "" {
			a.Users[i].Role = RoleViewer
		}
	}
}

func (a Admin) validate(p *problems) {
	positive(p, "admin.session_ttl", a.SessionTTL)
	positive(p, "admin.query_timeout", a.QueryTimeout)
	names := map[string]string{}
	name := func(key, n string) {
		switch prev, dup := names[n]; {
		case n == "":
			p.add(key, "is required: it names who did what in the log")
		case dup:
			p.add(key, "%q is used twice (also by %s)", n, prev)
		default:
			names[n] = key
		}
	}
	for i, t := range a.Tokens {
		key := fmt.Sprintf("admin.tokens[%d]", i)
		name(key+".name", t.Name)
		switch {
		case t.Token == "" && t.TokenFile == "":
			p.add(key+".token", "is required (or token_file, or the environment variable OUTBOX_CDC_ADMIN_TOKENS_%d_TOKEN)", i)
		case t.Token != "" && t.TokenFile != "":
			p.add(key, "token and token_file are both set: give one")
		case t.Token != "" && len(t.Token) < MinAdminTokenLength:
			p.add(key+".token", "is shorter than %d characters: use a random one, such as `outbox-cdc admin token` prints", MinAdminTokenLength)
		}
	}
	for i, u := range a.Users {
		key := fmt.Sprintf("admin.users[%d]", i)
		name(key+".name", u.Name)
		if strings.ContainsRune(u.Name, ':') {
			p.add(key+".name", "must not contain ':' (HTTP basic separates name and password with it)")
		}
		if u.PasswordHash == "" {
			p.add(key+".password_hash", "is required: a bcrypt hash, as `outbox-cdc admin hash-password` prints")
		} else if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil || !slices.Contains([]string{"$2a$", "$2b$", "$2y$"}, u.PasswordHash[:min(4, len(u.PasswordHash))]) {
			p.addErr(key+".password_hash", errors.New("is not a bcrypt hash ($2a$, $2b$ or $2y$): `outbox-cdc admin hash-password` prints one"))
		}
	}
}
