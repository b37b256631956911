package authz

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// PKI is an in-process CA with one serving certificate (127.0.0.1,
// localhost) shared by every probe webhook and the embedded chain's front
// end, and one client certificate the callers present (the webhooks require
// it, as a real authorization webhook would).
type PKI struct {
	CAPEM, ServerCertPEM, ServerKeyPEM, ClientCertPEM, ClientKeyPEM []byte
	Pool                                                            *x509.CertPool
	server, client                                                  tls.Certificate
}

// NewPKI makes a fresh CA and leaf certificates valid for a day.
func NewPKI() (*PKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gauntlet authz CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &PKI{CAPEM: pemBlock("CERTIFICATE", caDER), Pool: x509.NewCertPool()}
	p.Pool.AddCert(caCert)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, server bool) (certPEM, keyPEM []byte, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		t := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if server {
			t.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
			t.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, t, caCert, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		return pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", kb), nil
	}
	if p.ServerCertPEM, p.ServerKeyPEM, err = leaf(2, "gauntlet authz probes", x509.ExtKeyUsageServerAuth, true); err != nil {
		return nil, err
	}
	if p.ClientCertPEM, p.ClientKeyPEM, err = leaf(3, "gauntlet-authz-client", x509.ExtKeyUsageClientAuth, false); err != nil {
		return nil, err
	}
	if p.server, err = tls.X509KeyPair(p.ServerCertPEM, p.ServerKeyPEM); err != nil {
		return nil, fmt.Errorf("server key pair: %w", err)
	}
	if p.client, err = tls.X509KeyPair(p.ClientCertPEM, p.ClientKeyPEM); err != nil {
		return nil, fmt.Errorf("client key pair: %w", err)
	}
	return p, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// ServerTLS serves with the serving certificate; requireClient demands the
// client certificate (the probe webhooks), otherwise none is asked for.
func (p *PKI) ServerTLS(requireClient bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if requireClient {
		c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, p.Pool
	}
	return c
}

// ClientTLS trusts the CA and presents the client certificate.
func (p *PKI) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.Pool, Certificates: []tls.Certificate{p.client}, MinVersion: tls.VersionTLS12}
}

// Kubeconfig is the kubeconfig a chain uses to call the webhook at url.
func (p *PKI) Kubeconfig(name, url string) []byte {
	b64 := func(b []byte) string { return base64Std(b) }
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: apiserver
  user:
    client-certificate-data: %[4]s
    client-key-data: %[5]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: apiserver
current-context: %[1]s
`, name, url, b64(p.CAPEM), b64(p.ClientCertPEM), b64(p.ClientKeyPEM)))
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
