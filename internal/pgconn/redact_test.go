package pgconn

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	pgxconn "github.com/jackc/pgx/v5/pgconn"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:s3cret@127.0.0.1:5432/app":                     "postgres://app:xxxxx@127.0.0.1:5432/app",
		"postgres://127.0.0.1:5432/app":                                "postgres://127.0.0.1:5432/app",
		"postgres://app@127.0.0.1:5432/app":                            "postgres://app@127.0.0.1:5432/app",
		"host=x password=s3cret user=a":                                "host=x password=xxxxx user=a",
		"host=x password='s 3' user=a":                                 "host=x password=xxxxx user=a",
		"failed to connect to `user=app database=app`: 127.0.0.1:5432": "failed to connect to `user=app database=app`: 127.0.0.1:5432",
		// Issue 9: an unencoded '@' in the password.
		"postgres://app:p@ss:w0rd@db/app":                "postgres://app:xxxxx@db/app",
		"cannot parse `postgres://app:p@ss:w0rd@db/app`": "cannot parse `postgres://app:xxxxx@db/app`",
		// pgx's own partial redaction, redacted again.
		"cannot parse `postgres://app:xxxxx@ss:xxxxxx@db/app`: invalid port": "cannot parse `postgres://app:xxxxx@db/app`: invalid port",
		"postgres://app:a b@c:d%@db/app":                                     "postgres://app:xxxxx@db/app",
		"host=x password='p w@:%' user=a":                                    "host=x password=xxxxx user=a",
		`host=x password='it\'s @:%' user=a`:                                 "host=x password=xxxxx user=a",
		"host=x password='unterminated @:% user=a":                           "host=x password=xxxxx",
		"host=x PASSWORD = p@ss:w0rd user=a":                                 "host=x PASSWORD = xxxxx user=a",
		"postgres://app@db/app?sslmode=disable&password=p@ss":                "postgres://app@db/app?sslmode=disable&password=xxxxx",
		"two: postgres://a:p1@h1/x and redis://b:p2@h2:6379/0":               "two: postgres://a:xxxxx@h1/x and redis://b:xxxxx@h2:6379/0",
		"nats://u:p@n1:4222,nats://v:q@n2:4222":                              "nats://u:xxxxx@n1:4222,nats://v:xxxxx@n2:4222",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// Issue 9: a password with '@', ':', '%', quotes, backslashes and spaces
// is never shown, in either connection string form, whether pgx can parse it
// or not.
func TestRedactParseErrors(t *testing.T) {
	const pw = `Qzx1@Kvw2:Jpy3%Hmb4 Gtn5'Fqc6\Lmd7`
	pieces := []string{"Qzx1", "Kvw2", "Jpy3", "Hmb4", "Gtn5", "Fqc6", "Lmd7"}
	kv := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw) + "'"
	for _, cs := range []string{
		"postgres://app:" + pw + "@db/app",
		"postgres://app:Qzx1@Kvw2:Jpy3%Hmb4@db:5432/app",
		"postgres://app:Qzx1@Kvw2:Jpy3@db:5432/app",
		"postgresql://app:Qzx1:Kvw2 Jpy3@db/app",
		"postgres://app:" + url.QueryEscape(pw) + "@db:notaport/app",
		"postgres://app@db:notaport/app?password=" + url.QueryEscape(pw),
		"host=db port=notaport user=app password=" + kv,
		"host=db user=app password=" + kv + " dbname='unterminated",
		"host=db user=app password=Qzx1@Kvw2:Jpy3%Hmb4 port=x",
	} {
		_, err := pgxconn.ParseConfig(cs)
		if err == nil {
			t.Errorf("%q parsed; the test wants a parse error", cs)
			continue
		}
		red := RedactError(err)
		for _, p := range pieces {
			if strings.Contains(red.Error(), p) {
				t.Errorf("%q: %q shows %q", cs, red, p)
				break
			}
		}
		var pce *pgxconn.ParseConfigError
		if !errors.As(red, &pce) || !strings.HasPrefix(red.Error(), "cannot parse `") {
			t.Errorf("%q: %q does not wrap the parse error or name it", cs, red)
		}
	}
}
