package main

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := run(dir, []string{"127.0.0.1", "localhost", ""}, "admin", time.Hour); err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no PEM block", name)
		}
		return blk.Bytes
	}
	cert := func(name string) *x509.Certificate {
		t.Helper()
		c, err := x509.ParseCertificate(read(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return c
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert("ca.crt"))

	tests := []struct {
		name  string
		cert  string
		opts  x509.VerifyOptions
		check func(*x509.Certificate) bool
	}{
		{name: "serving cert for 127.0.0.1", cert: "apiserver.crt",
			opts: x509.VerifyOptions{DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}},
		{name: "serving cert for localhost", cert: "apiserver.crt",
			opts: x509.VerifyOptions{DNSName: "localhost", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}},
		{name: "admin client cert in system:masters", cert: "admin.crt",
			opts: x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			check: func(c *x509.Certificate) bool {
				return c.Subject.CommonName == "admin" && slices.Equal(c.Subject.Organization, []string{"system:masters"})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cert(tt.cert)
			tt.opts.Roots = roots
			if _, err := c.Verify(tt.opts); err != nil {
				t.Fatal(err)
			}
			if tt.check != nil && !tt.check(c) {
				t.Fatalf("subject %v", c.Subject)
			}
		})
	}

	priv, err := x509.ParsePKCS1PrivateKey(read("sa.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(read("sa.pub"))
	if err != nil {
		t.Fatal(err)
	}
	if !priv.PublicKey.Equal(pub.(*rsa.PublicKey)) {
		t.Fatal("sa.pub is not sa.key's public key")
	}
	for _, name := range []string{"ca.key", "apiserver.key", "admin.key", "sa.key"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v (%v), want 0600", name, fi.Mode().Perm(), err)
		}
	}
	// A second run must not overwrite a running instance's PKI.
	if err := run(dir, []string{"127.0.0.1"}, "admin", time.Hour); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second run into the same dir: %v, want an 'already exists' error", err)
	}
}
