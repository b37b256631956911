package spiffeca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// A client with one CA's SVID talks mTLS to a server of the same CA; the
// server sees the client's SPIFFE ID; a wrong expected server ID, a foreign
// CA's client and an invalid identity are refused.
func TestMTLS(t *testing.T) {
	ca, err := New("cluster.local", "test")
	if err != nil {
		t.Fatal(err)
	}
	other, err := New("cluster.local", "other")
	if err != nil {
		t.Fatal(err)
	}
	srvID, _ := ca.ID("srv", "web")
	wrongID, _ := ca.ID("srv", "db")
	tests := []struct {
		name      string
		client    *CA
		server    string // expected server identity's service account
		clientErr string // the client's dial or first read fails so
		serverErr string // the server's handshake fails so
		wantID    string // else: the client identity the server saw
	}{
		{name: "same CA", client: ca, server: "web", wantID: "spiffe://cluster.local/ns/cli/sa/allowed"},
		{name: "wrong server identity", client: ca, server: "db", clientErr: "server presented " + srvID.String() + ", want " + wrongID.String()},
		{name: "foreign CA client", client: other, server: "web", serverErr: "handshake: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scfg, err := ca.ServerTLS("srv", "web")
			if err != nil {
				t.Fatal(err)
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			peer := make(chan string, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					peer <- "accept: " + err.Error()
					return
				}
				defer c.Close()
				tc := c.(*tls.Conn)
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					peer <- "handshake: " + err.Error()
					return
				}
				if cs := tc.ConnectionState().PeerCertificates; len(cs) > 0 && len(cs[0].URIs) > 0 {
					peer <- cs[0].URIs[0].String()
					return
				}
				peer <- "no peer certificate"
			}()
			want, _ := ca.ID("srv", tc.server)
			ccfg, err := tc.client.ClientTLS("cli", "allowed", want)
			if err != nil {
				t.Fatal(err)
			}
			d := tls.Dialer{Config: ccfg, NetDialer: &net.Dialer{Timeout: 5 * time.Second}}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
			if err == nil {
				// TLS 1.3: a client certificate the server rejects shows up on the first read.
				c.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = c.Read(make([]byte, 1))
				c.Close()
			}
			got := <-peer
			switch {
			case tc.clientErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.clientErr) {
					t.Fatalf("client error %v, want %q", err, tc.clientErr)
				}
				return
			case tc.serverErr != "":
				if !strings.Contains(got, tc.serverErr) {
					t.Fatalf("server %q, want %q", got, tc.serverErr)
				}
				return
			}
			if got != tc.wantID {
				t.Errorf("server saw %q, want %q", got, tc.wantID)
			}
		})
	}
	if _, err := ca.SVID("", "x"); err == nil {
		t.Error("SVID with an empty namespace: no error")
	}
}

// WriteSVID writes a chain the root verifies, with the identity's URI SAN.
func TestWriteSVID(t *testing.T) {
	ca, err := New("example.org", "test")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ca.WriteSVID(t.TempDir()+"/wl", "ns1", "sa1")
	if err != nil {
		t.Fatal(err)
	}
	read := func(p string) *x509.Certificate {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	leaf, root := read(f.Cert), read(f.Root)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify against the written root: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://example.org/ns/ns1/sa/sa1" {
		t.Errorf("leaf URIs %v", leaf.URIs)
	}
	if _, err := tls.LoadX509KeyPair(f.Cert, f.Key); err != nil {
		t.Errorf("cert and key do not pair: %v", err)
	}
	if st, err := os.Stat(f.Key); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
}
