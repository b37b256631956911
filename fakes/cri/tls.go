package cri

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"github.com/gauntlet-conformance/gauntlet/faults"
	"math/big"
	"net"
	"time"
)

// TLS streaming (check G2). With Options.TLS the stream server serves https
// with a certificate for 127.0.0.1, ::1 and localhost issued by a CA made at
// start; Runtime.StreamCA returns that CA so a client can verify it, as a
// kubelet would with the runtime's configured CA.

type streamTLS struct {
	caPEM  []byte
	config *tls.Config
}

func newStreamTLS(f *faultSet) (*streamTLS, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gauntlet reference runtime CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	// All three certificates are made at start; the faults choose one per
	// handshake, so they can be armed after a test's fixtures exist.
	good, err := leafCert(now, ca, caKey, false, false)
	if err != nil {
		return nil, err
	}
	wrongHost, err := leafCert(now, ca, caKey, true, false)
	if err != nil {
		return nil, err
	}
	selfSigned, err := leafCert(now, ca, caKey, false, true)
	if err != nil {
		return nil, err
	}
	return &streamTLS{
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		config: &tls.Config{
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				switch {
				case f.has(faults.TLSSelfSigned):
					return selfSigned, nil
				case f.has(faults.TLSWrongHost):
					return wrongHost, nil
				}
				return good, nil
			},
			MinVersion: tls.VersionTLS12,
		},
	}, nil
}

func leafCert(now time.Time, ca *x509.Certificate, caKey *ecdsa.PrivateKey, wrongHost, selfSigned bool) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "gauntlet stream server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if wrongHost {
		leaf.DNSNames, leaf.IPAddresses = []string{"stream.example.invalid"}, nil
	}
	parent, signer := ca, any(caKey)
	if selfSigned {
		parent, signer = leaf, key
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("stream certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// StreamCA returns the PEM of the CA that issued the stream server's
// certificate, or nil when streams are plain http.
func (r *Runtime) StreamCA() []byte {
	if r.streams == nil || r.streams.tls == nil {
		return nil
	}
	return r.streams.tls.caPEM
}
