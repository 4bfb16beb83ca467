package tlsconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOnValidateBuild(t *testing.T) {
	t.Parallel()
	if (Config{}).On() {
		t.Fatal("the zero Config turns TLS on")
	}
	if tc, err := (Config{}).Build("h"); tc != nil || err != nil {
		t.Fatalf("Build with TLS off = %v, %v; want nil, nil", tc, err)
	}
	for _, c := range []Config{{Enabled: true}, {CAFile: "x"}, {ServerName: "x"}, {InsecureSkipVerify: true}, {CertFile: "c", KeyFile: "k"}} {
		if !c.On() {
			t.Errorf("%+v: On() = false", c)
		}
	}
	if err := (Config{CertFile: "c"}).Validate(); err == nil || !strings.Contains(err.Error(), "key_file") {
		t.Errorf("cert without key: %v", err)
	}
	tc, err := Config{Enabled: true}.Build("broker.example")
	if err != nil || tc.ServerName != "broker.example" {
		t.Fatalf("Build = %+v, %v; want ServerName from the address", tc, err)
	}
	if tc, _ := (Config{Enabled: true, ServerName: "own"}).Build("broker.example"); tc.ServerName != "own" {
		t.Errorf("ServerName %q, want the configured one", tc.ServerName)
	}
	bad := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o644)
	if _, err := (Config{CAFile: bad}).Build(""); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Errorf("bad CA file: %v", err)
	}
	if _, err := (Config{CAFile: bad + ".missing"}).Build(""); err == nil {
		t.Error("missing CA file accepted")
	}
}
