// Command certs writes the PKI of a throwaway test control plane into one
// directory, with crypto/x509 only, so that nothing but Go is needed (no openssl):
//
//	ca.crt ca.key                   self-signed CA, trusted for serving and client certs
//	apiserver.crt apiserver.key     serving cert for the -hosts SANs
//	admin.crt admin.key             client cert CN=-admin-user, O=system:masters
//	sa.key sa.pub                   RSA key pair that signs service-account tokens
//
// Used by hack/k8s/apiserver up. Exit 2 on bad flags, 1 on any other error.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	dir := flag.String("dir", "", "directory to write the files into (created, must not hold them yet)")
	hosts := flag.String("hosts", "127.0.0.1,localhost", "comma-separated IP and DNS SANs of the serving cert")
	admin := flag.String("admin-user", "gauntlet-admin", "CN of the admin client cert (its O is system:masters)")
	validity := flag.Duration("validity", 30*24*time.Hour, "lifetime of every cert, from now")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: certs -dir DIR [-hosts 127.0.0.1,localhost] [-admin-user NAME] [-validity 720h]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *dir == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "certs: error: -dir is required and no positional arguments are taken: run certs -dir DIR")
		os.Exit(2)
	}
	if err := run(*dir, strings.Split(*hosts, ","), *admin, *validity); err != nil {
		fmt.Fprintf(os.Stderr, "certs: error: %v\n", err)
		os.Exit(1)
	}
}

func run(dir string, hosts []string, adminUser string, validity time.Duration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Backdated so that a clock a little behind the signer's still accepts them.
	now := time.Now().UTC()
	notBefore, notAfter := now.Add(-time.Hour), now.Add(validity)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "gauntlet-k8s-ca"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := sign(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}

	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		switch ip := net.ParseIP(h); {
		case h == "":
		case ip != nil:
			serving.IPAddresses = append(serving.IPAddresses, ip)
		default:
			serving.DNSNames = append(serving.DNSNames, h)
		}
	}
	client := &x509.Certificate{
		Subject:     pkix.Name{CommonName: adminUser, Organization: []string{"system:masters"}},
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}

	caKeyPEM, err := ecKeyPEM(caKey)
	if err != nil {
		return err
	}
	files := []file{{"ca.crt", pemBlock("CERTIFICATE", caDER)}, {"ca.key", caKeyPEM}}
	for _, leaf := range []struct {
		name string
		tmpl *x509.Certificate
	}{{"apiserver", serving}, {"admin", client}} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		der, err := sign(leaf.tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyPEM, err := ecKeyPEM(key)
		if err != nil {
			return err
		}
		files = append(files, file{leaf.name + ".crt", pemBlock("CERTIFICATE", der)}, file{leaf.name + ".key", keyPEM})
	}

	// RSA rather than ECDSA: RS256 is what most clusters sign tokens with,
	// and what token consumers (credential providers, STS) expect first.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	files = append(files,
		file{"sa.key", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey))},
		file{"sa.pub", pemBlock("PUBLIC KEY", saPub)})

	for _, f := range files {
		// Certificates and the public key are world-readable (a test running
		// as another user needs the CA); private keys are not.
		mode := os.FileMode(0o644)
		if strings.HasSuffix(f.name, ".key") {
			mode = 0o600
		}
		// O_EXCL: never overwrite the PKI of an instance that is running.
		if err := writeNew(filepath.Join(dir, f.name), f.data, mode); err != nil {
			return err
		}
	}
	return nil
}

type file struct {
	name string
	data []byte
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
}

func ecKeyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pemBlock("EC PRIVATE KEY", der), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists: use an empty -dir", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
