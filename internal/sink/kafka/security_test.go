package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestSASL logs in with each mechanism, and checks that a wrong password
// fails at startup with a message that says so and does not show it.
func TestSASL(t *testing.T) {
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			c := newFakeCluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "app", "right-password"), kfake.SeedTopics(1, "t"))
			for _, tc := range []struct {
				password string
				ok       bool
			}{{"right-password", true}, {"wrong-password", false}} {
				cfg := c.config("t")
				cfg.SASL = SASLConfig{Mechanism: strings.ToLower(mech), Username: "app", Password: tc.password}
				cfg.ConnectTimeout = 3 * time.Second
				opts, _, logs := testOptions(t)
				s, err := New(context.Background(), cfg, opts)
				if tc.ok {
					if err != nil {
						t.Fatalf("New: %v", err)
					}
					publishAll(t, s, makeEvents(5, "x", []string{"a"}), 5)
					s.Close()
					continue
				}
				if err == nil {
					s.Close()
					t.Fatal("New succeeded with a wrong password")
				}
				// Kafka answers SASL_AUTHENTICATION_FAILED (the message
				// then names the user); kfake closes the connection.
				for _, w := range []string{"sink kafka-test:", "sasl", "password"} {
					if !strings.Contains(err.Error(), w) {
						t.Fatalf("error %q does not contain %q", err, w)
					}
				}
				if strings.Contains(err.Error(), tc.password) || strings.Contains(logs.String(), tc.password) {
					t.Fatal("password in error or log")
				}
			}
		})
	}
	if s := fmt.Sprintf("%+v %#v", Config{SASL: SASLConfig{Mechanism: "PLAIN", Username: "u", Password: "hunter2"}}, SASLConfig{Mechanism: "PLAIN", Password: "hunter2"}); strings.Contains(s, "hunter2") {
		t.Fatalf("printed config shows the password: %s", s)
	}
}

// TestTLS runs against a broker requiring TLS with client certificates:
// the CA file and client certificate connect; without the CA the broker's
// certificate is not trusted and New says so.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := makeCA(t, dir)
	serverCert := makeCert(t, dir, "server", ca, caKey, false)
	makeCert(t, dir, "client", ca, caKey, true)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c := newFakeCluster(t, kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}), kfake.SeedTopics(1, "t"))

	good := TLSConfig{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "client.pem"),
		KeyFile:  filepath.Join(dir, "client-key.pem"),
	}
	for _, tc := range []struct {
		name string
		tls  TLSConfig
		want string // "" means success
	}{
		{"ca and client cert", good, ""},
		{"insecure skip verify", TLSConfig{InsecureSkipVerify: true, CertFile: good.CertFile, KeyFile: good.KeyFile}, ""},
		{"untrusted", TLSConfig{Enabled: true, CertFile: good.CertFile, KeyFile: good.KeyFile}, "not trusted"},
		{"missing ca file", TLSConfig{CAFile: filepath.Join(dir, "nope.pem")}, "tls.ca_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := c.config("t")
			cfg.TLS = tc.tls
			cfg.ConnectTimeout = 2 * time.Second
			opts, _, _ := testOptions(t)
			s, err := New(context.Background(), cfg, opts)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				publishAll(t, s, makeEvents(5, "x", []string{"a"}), 5)
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func makeCA(t *testing.T, dir string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "outbox-cdc test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", der)
	ca, _ := x509.ParseCertificate(der)
	return ca, key
}

func makeCert(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, client bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	writePEM(t, filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", kder)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
