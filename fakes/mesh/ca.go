package mesh

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/url"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ca is the mesh's in-process certificate authority: it issues X.509 SVIDs
// (URI SAN spiffe://<td>/ns/<ns>/sa/<sa>) to workloads and clients, the way
// a mesh's identity agent does, and verifies peers against its bundle.
type ca struct {
	td     spiffeid.TrustDomain
	key    *ecdsa.PrivateKey
	cert   *x509.Certificate
	pool   *x509.CertPool
	bundle *x509bundle.Bundle

	mu     sync.Mutex
	serial int64
	cache  map[string]*tls.Certificate
}

func newCA(trustDomain string) (*ca, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("trust domain %q: %w", trustDomain, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"gauntlet reference mesh"}, CommonName: td.String() + " root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &ca{td: td, key: key, cert: cert, pool: pool, serial: 1, cache: map[string]*tls.Certificate{},
		bundle: x509bundle.FromX509Authorities(td, []*x509.Certificate{cert})}, nil
}

// svid issues (once, then cached) the SVID of namespace/serviceAccount.
func (c *ca) svid(namespace, serviceAccount string) (*tls.Certificate, error) {
	id, err := spiffeid.FromSegments(c.td, "ns", namespace, "sa", serviceAccount)
	if err != nil {
		return nil, fmt.Errorf("identity %s/%s: %w", namespace, serviceAccount, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cert, ok := c.cache[id.String()]; ok {
		return cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(c.serial),
		Subject:      pkix.Name{Organization: []string{"gauntlet reference mesh"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	c.cache[id.String()] = cert
	return cert, nil
}

// verify checks a peer chain against the bundle and returns its SPIFFE ID.
func (c *ca) verify(raw [][]byte) (spiffeid.ID, error) {
	id, _, err := x509svid.ParseAndVerify(raw, c.bundle)
	return id, err
}

// serverTLS is a workload proxy's inbound config: its own SVID, client
// certificates requested and verified against the bundle when present
// (a peer without one is a client outside the mesh).
func (c *ca) serverTLS(namespace, serviceAccount string) (*tls.Config, error) {
	cert, err := c.svid(namespace, serviceAccount)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{*cert},
		ClientAuth:   tls.RequestClientCert,
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS13,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil
			}
			_, err := c.verify(raw)
			return err
		},
	}, nil
}

// clientTLS is a meshed client's outbound config: its SVID, and the server
// must present the SVID of the workload's service account.
func (c *ca) clientTLS(namespace, serviceAccount string, server spiffeid.ID, nextProtos ...string) (*tls.Config, error) {
	cert, err := c.svid(namespace, serviceAccount)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates:       []tls.Certificate{*cert},
		InsecureSkipVerify: true, // verified below against the SPIFFE bundle and ID, not a DNS name
		NextProtos:         nextProtos,
		MinVersion:         tls.VersionTLS13,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			id, err := c.verify(raw)
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
