package nats

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/outbox-cdc/outbox-cdc/internal/harness"
	"github.com/outbox-cdc/outbox-cdc/internal/sinktest"
)

// Every authentication method gets a sink through to an acknowledged
// event; the wrong secret or missing trust fails at startup.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	nkeySeed, nkeyPub := nkeyUser(t, dir)
	creds, operatorConf := operatorSetup(t, dir)
	ca, serverCert, serverKey, clientCert, clientKey := tlsFiles(t, dir)
	tlsConf := fmt.Sprintf(`tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }`, serverCert, serverKey, ca)

	for _, tc := range []struct {
		name    string
		server  harness.NATSOptions
		cfg     func(c *Config)
		wantErr string // substring of New's error; "" for success
	}{
		{"user password", harness.NATSOptions{User: "alice", Password: "pw"},
			func(c *Config) { c.User, c.Password = "alice", "pw" }, ""},
		{"user password in url", harness.NATSOptions{User: "alice", Password: "pw"},
			func(c *Config) { c.URL = strings.Replace(c.URL, "nats://", "nats://alice:pw@", 1) }, ""},
		{"token", harness.NATSOptions{Token: "s3cret-token"},
			func(c *Config) { c.Token = "s3cret-token" }, ""},
		{"wrong token", harness.NATSOptions{Token: "s3cret-token"},
			func(c *Config) { c.Token = "guess" }, "check the credentials"},
		{"nkey", harness.NATSOptions{ExtraConf: []string{fmt.Sprintf(`authorization { users = [ {nkey: %q} ] }`, nkeyPub)}},
			func(c *Config) { c.NKeySeedFile = nkeySeed }, ""},
		{"credentials file", harness.NATSOptions{ExtraConf: operatorConf},
			func(c *Config) { c.CredentialsFile = creds }, ""},
		{"mutual tls", harness.NATSOptions{ExtraConf: []string{tlsConf}},
			func(c *Config) { c.TLS = TLSConfig{CAFile: ca, CertFile: clientCert, KeyFile: clientKey} }, ""},
		{"tls without client certificate", harness.NATSOptions{ExtraConf: []string{tlsConf}},
			func(c *Config) { c.TLS = TLSConfig{CAFile: ca} }, "sink t1: cannot connect"},
		{"tls with unknown authority", harness.NATSOptions{ExtraConf: []string{tlsConf}},
			func(c *Config) { c.TLS = TLSConfig{CertFile: clientCert, KeyFile: clientKey} }, "check the tls settings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startNATS(t, tc.server)
			cfg := baseConfig(srv.URL())
			cfg.ConnectTimeout = 5 * time.Second
			tc.cfg(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rec := sinktest.NewRecorder()
			s, err := New(ctx, cfg, sinktest.Options("t1", rec, sinktest.Logger()))
			if tc.wantErr != "" {
				if err == nil {
					s.Close()
					t.Fatal("New succeeded")
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New = %v, want an error containing %q", err, tc.wantErr)
				}
				for _, secret := range []string{"s3cret-token", "guess", ":pw@"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error %q reveals a secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer s.Close()
			evs := makeEvents(0, 5, 2)
			if err := s.Publish(ctx, evs); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			rec.CheckInOrder(t, evs)
		})
	}
}

func nkeyUser(t *testing.T, dir string) (seedFile, pub string) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ = kp.PublicKey()
	seedFile = filepath.Join(dir, "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return seedFile, pub
}

// operatorSetup makes an operator, an account with JetStream and a user in
// it: the user's credentials file and the server configuration lines.
func operatorSetup(t *testing.T, dir string) (credsFile string, conf []string) {
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	skp, _ := nkeys.CreateAccount() // the system account JetStream needs
	spub, _ := skp.PublicKey()
	sjwt, err := jwt.NewAccountClaims(spub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	oc := jwt.NewOperatorClaims(opub)
	oc.SystemAccount = spub
	ojwt, err := oc.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ajwt, err := ac.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	credsFile = filepath.Join(dir, "user.creds")
	if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return credsFile, []string{
		"operator: " + ojwt,
		"system_account: " + spub,
		"resolver: MEMORY",
		fmt.Sprintf("resolver_preload: { %s: %s, %s: %s }", apub, ajwt, spub, sjwt),
	}
}

// tlsFiles writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all PEM.
func tlsFiles(t *testing.T, dir string) (ca, serverCert, serverKey, clientCert, clientKey string) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "outbox-cdc test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
			DNSNames:     []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(key)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "PRIVATE KEY", kder)
	}
	ca = write("ca.pem", "CERTIFICATE", caDER)
	serverCert, serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return
}
