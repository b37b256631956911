// Package spiffeca is an in-process SPIFFE certificate authority for mesh
// targets: it issues X.509 SVIDs (URI SAN spiffe://<td>/ns/<ns>/sa/<sa>) the
// way a mesh's identity agent does, verifies peers against its bundle, builds
// the TLS configs of mTLS servers and clients, and writes SVIDs as PEM files
// for data planes that read certificates from disk (grpc-go's file_watcher
// certificate provider, like Istio's agent output). The reference mesh
// (fakes/mesh) and the Istio proxyless-gRPC target (hack/istio-grpc) share it.
package spiffeca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// validity bounds every certificate: a run lasts minutes, and a clock a
// little behind must not make fresh SVIDs "not yet valid".
const (
	backdate = time.Hour
	lifetime = 24 * time.Hour
)

// CA issues and verifies the SVIDs of one trust domain.
type CA struct {
	td     spiffeid.TrustDomain
	org    string
	key    *ecdsa.PrivateKey
	root   *x509.Certificate
	bundle *x509bundle.Bundle

	mu     sync.Mutex
	serial int64
	certs  map[spiffeid.ID]*tls.Certificate
}

// New makes a CA for trustDomain; org names the issuer in the certificates'
// subjects (which mesh issued them, when a handshake fails).
func New(trustDomain, org string) (*CA, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("trust domain %q: %w", trustDomain, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{org}, CommonName: td.String() + " root"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{td: td, org: org, key: key, root: root, serial: 1, certs: map[spiffeid.ID]*tls.Certificate{},
		bundle: x509bundle.FromX509Authorities(td, []*x509.Certificate{root})}, nil
}

// TrustDomain is the CA's trust domain.
func (c *CA) TrustDomain() spiffeid.TrustDomain { return c.td }

// ID is the SPIFFE ID of namespace/serviceAccount.
func (c *CA) ID(namespace, serviceAccount string) (spiffeid.ID, error) {
	id, err := spiffeid.FromSegments(c.td, "ns", namespace, "sa", serviceAccount)
	if err != nil {
		return id, fmt.Errorf("identity %s/%s: %w", namespace, serviceAccount, err)
	}
	return id, nil
}

// SVID issues (once, then cached) the SVID of namespace/serviceAccount.
func (c *CA) SVID(namespace, serviceAccount string) (*tls.Certificate, error) {
	id, err := c.ID(namespace, serviceAccount)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cert, ok := c.certs[id]; ok {
		return cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c.serial++
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(c.serial),
		Subject:      pkix.Name{Organization: []string{c.org}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.root, &key.PublicKey, c.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	c.certs[id] = cert
	return cert, nil
}

// Verify checks a peer's certificate chain against the bundle and returns
// its SPIFFE ID.
func (c *CA) Verify(raw [][]byte) (spiffeid.ID, error) {
	id, _, err := x509svid.ParseAndVerify(raw, c.bundle)
	return id, err
}

// ServerTLS is a workload's inbound config: its own SVID, client
// certificates requested and verified against the bundle when present (a
// peer without one is a client outside the mesh; policy decides about it).
func (c *CA) ServerTLS(namespace, serviceAccount string, nextProtos ...string) (*tls.Config, error) {
	cert, err := c.SVID(namespace, serviceAccount)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{*cert},
		ClientAuth:   tls.RequestClientCert,
		NextProtos:   nextProtos,
		MinVersion:   tls.VersionTLS13,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil
			}
			_, err := c.Verify(raw)
			return err
		},
	}, nil
}

// ClientTLS is a meshed client's outbound config: its SVID, and the server
// must present the SVID of server (SPIFFE ID match against the bundle, not a
// DNS name, as a mesh's UpstreamTlsContext asks).
func (c *CA) ClientTLS(namespace, serviceAccount string, server spiffeid.ID, nextProtos ...string) (*tls.Config, error) {
	cert, err := c.SVID(namespace, serviceAccount)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates:       []tls.Certificate{*cert},
		InsecureSkipVerify: true, // verified below against the SPIFFE bundle and ID
		NextProtos:         nextProtos,
		MinVersion:         tls.VersionTLS12,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, err := c.Verify(raw)
			if err != nil {
				return err
			}
			if id != server {
				return fmt.Errorf("server presented %s, want %s", id, server)
			}
			return nil
		},
	}, nil
}

// Files are the PEM files of one identity, named as Istio's agent names
// them for a proxyless pod (cert-chain.pem, key.pem, root-cert.pem).
type Files struct {
	Cert, Key, Root string
}

// WriteSVID writes the SVID of namespace/serviceAccount, its key and the
// root certificate into dir (created, 0700; files 0600).
func (c *CA) WriteSVID(dir, namespace, serviceAccount string) (Files, error) {
	cert, err := c.SVID(namespace, serviceAccount)
	if err != nil {
		return Files{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return Files{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, err
	}
	f := Files{Cert: filepath.Join(dir, "cert-chain.pem"), Key: filepath.Join(dir, "key.pem"), Root: filepath.Join(dir, "root-cert.pem")}
	for _, w := range []struct {
		path, typ string
		der       []byte
	}{{f.Cert, "CERTIFICATE", cert.Certificate[0]}, {f.Key, "PRIVATE KEY", keyDER}, {f.Root, "CERTIFICATE", c.root.Raw}} {
		if err := os.WriteFile(w.path, pem.EncodeToMemory(&pem.Block{Type: w.typ, Bytes: w.der}), 0o600); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}
