package redis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
)

// writeCert creates a key pair signed by parent (self-signed when parent is
// nil) and writes <name>.pem and <name>.key to dir.
func writeCert(t *testing.T, dir, name string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, key
}

// TestTLS runs the sink against redis-server with TLS only, requiring
// client certificates: verified with the CA, refused with another CA,
// accepted with insecure_skip_verify, refused without a client certificate.
func TestTLS(t *testing.T) {
	t.Parallel()
	redisServerBin(t)
	dir := t.TempDir()
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	ca, caKey := writeCert(t, dir, "ca", caTmpl, nil, nil)
	writeCert(t, dir, "other-ca", &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "other ca"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	writeCert(t, dir, "server", &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "redis"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, caKey)
	writeCert(t, dir, "client", &x509.Certificate{SerialNumber: big.NewInt(4), Subject: pkix.Name{CommonName: "outbox-cdc"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, caKey)

	port := freePort(t)
	srv := startServerPort(t, port, "--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", filepath.Join(dir, "server.pem"), "--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"), "--tls-auth-clients", "yes")
	file := func(n string) string { return filepath.Join(dir, n) }
	client := TLSConfig{Enabled: true, CertFile: file("client.pem"), KeyFile: file("client.key")}
	for _, tc := range []struct {
		name    string
		tls     TLSConfig
		wantErr string
	}{
		{"verified", withCA(client, file("ca.pem")), ""},
		// Any TLS key turns TLS on, without enabled.
		{"insecure skip verify", TLSConfig{InsecureSkipVerify: true, CertFile: client.CertFile, KeyFile: client.KeyFile}, ""},
		{"unknown authority", withCA(client, file("other-ca.pem")), "certificate"},
		{"no client certificate", TLSConfig{Enabled: true, CAFile: file("ca.pem")}, srv.addr()},
		{"plain text to a tls port", TLSConfig{}, srv.addr()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := sinktest.NewRecorder()
			s, err := New(context.Background(), Config{Address: srv.addr(), TLS: tc.tls, Stream: "tls:" + tc.name, ConnectTimeout: 3 * time.Second, Timeout: 3 * time.Second},
				sinktest.Options("test", obs, nil))
			if tc.wantErr != "" {
				if err == nil {
					s.Close()
					t.Fatal("New succeeded")
				}
				t.Logf("error: %v", err)
				if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "sink test") {
					t.Fatalf("New: %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			evs := makeEvents("tls-"+tc.name, 10, 2, []string{"x"})
			if err := s.Publish(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			flush(t, s, 10*time.Second)
			obs.CheckExactly(t, evs)
		})
	}
}

func withCA(c TLSConfig, ca string) TLSConfig {
	c.CAFile = ca
	return c
}
