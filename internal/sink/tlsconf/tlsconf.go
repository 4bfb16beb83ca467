// Package tlsconf is the TLS section every broker sink shares: the same YAML
// keys, the same checks, the same *tls.Config.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Config configures TLS to a broker. Files are PEM and read at startup.
type Config struct {
	// Enabled turns TLS on with the system roots. Default false; setting
	// any other field turns TLS on too.
	Enabled bool
	// CAFile holds the certificate authorities to verify the server with,
	// instead of the system roots. Default none.
	CAFile string
	// CertFile and KeyFile are the client certificate and key, for servers
	// that require client authentication. Default none; both or neither.
	CertFile string
	KeyFile  string
	// ServerName overrides the name checked in the server certificate.
	// Default: the host dialed.
	ServerName string
	// InsecureSkipVerify accepts any server certificate. Default false; for
	// tests only.
	InsecureSkipVerify bool
}

// On reports whether TLS is wanted: Enabled, or any other field set.
func (c Config) On() bool {
	return c.Enabled || c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.ServerName != "" || c.InsecureSkipVerify
}

// Validate checks the fields without reading the files.
func (c Config) Validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("tls.cert_file and key_file go together: set both or neither")
	}
	return nil
}

// Build reads the files and returns the *tls.Config, or nil when TLS is off.
// serverName is used when c.ServerName is empty ("" lets the client use the
// host it dials).
func (c Config) Build(serverName string) (*tls.Config, error) {
	if !c.On() {
		return nil, nil
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
	}
	if tc.ServerName == "" {
		tc.ServerName = serverName
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate found", c.CAFile)
		}
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
