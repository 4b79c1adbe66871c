package seedpki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 5280 key identifiers only, see subjectKeyID
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/tlsutil"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
)

const (
	// RootCommonName is the subject common name of the seed root CA.
	RootCommonName = "Metacircular Seed Root CA"

	// DefaultValidity is the lifetime of an issued certificate when the
	// request does not set one: 397 days, the longest browsers accept.
	DefaultValidity = 397 * 24 * time.Hour

	caCertFile = "ca.crt"
	caKeyFile  = "ca.key"
	issuedDir  = "issued"

	rootValidityYears = 10
	// reuseMargin is how long an issued certificate must stay valid to be
	// reused instead of re-issued.
	reuseMargin = 30 * 24 * time.Hour
	// backdate tolerates clock skew between the machine that issues and
	// the machines that verify.
	backdate   = 5 * time.Minute
	maxNameLen = 128
)

// ErrNotInitialized reports that a directory holds no seed CA.
var ErrNotInitialized = errors.New("not initialized")

// CA is a loaded seed root CA. Its methods are safe for concurrent use.
type CA struct {
	dir     string
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer

	mu sync.Mutex // serializes Issue so two callers never interleave writes of one pair
}

// IssueRequest describes a certificate to issue. At least one DNS name or
// IP address is required.
type IssueRequest struct {
	DNSNames []string
	IPs      []net.IP
	// Validity is the certificate lifetime; zero means DefaultValidity. It
	// is capped at the root's own expiry.
	Validity time.Duration
}

// Issued describes an issued certificate on disk.
type Issued struct {
	// CertPath is the PEM full chain: the leaf followed by the root.
	CertPath string
	// KeyPath is the leaf's PKCS#8 PEM private key (mode 0600).
	KeyPath string
	// Leaf is the parsed leaf certificate.
	Leaf *x509.Certificate
}

// Init loads the seed CA in dir, creating it first if dir holds none. It is
// idempotent: a second call returns the same root. A ca.key left without
// ca.crt (a crash between the two writes) is reused to complete the pair;
// a ca.crt without its key is an error, because nothing can replace it.
func Init(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}
	certExists, err := exists(filepath.Join(dir, caCertFile))
	if err != nil {
		return nil, err
	}
	keyExists, err := exists(filepath.Join(dir, caKeyFile))
	if err != nil {
		return nil, err
	}
	switch {
	case certExists && keyExists:
		return Load(dir)
	case certExists:
		return nil, fmt.Errorf("init seed CA: %s exists without %s; restore the key or move the certificate away",
			filepath.Join(dir, caCertFile), caKeyFile)
	}

	var key crypto.Signer
	if keyExists {
		key, err = readKey(filepath.Join(dir, caKeyFile))
		if err != nil {
			return nil, fmt.Errorf("init seed CA: %w", err)
		}
	} else {
		ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate CA key: %w", err)
		}
		if err := writeKey(filepath.Join(dir, caKeyFile), ecKey); err != nil {
			return nil, fmt.Errorf("init seed CA: %w", err)
		}
		key = ecKey
	}

	der, err := createRoot(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := atomicfile.Write(filepath.Join(dir, caCertFile), certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("init seed CA: %w", err)
	}
	return Load(dir)
}

// Load loads an existing seed CA from dir. It returns an error wrapping
// ErrNotInitialized if dir holds no CA, and an error if the certificate
// and key do not parse, do not match, or the root is not a usable CA.
func Load(dir string) (*CA, error) {
	certPath := filepath.Join(dir, caCertFile)
	keyPath := filepath.Join(dir, caKeyFile)
	certPEM, err := os.ReadFile(certPath) //nolint:gosec // the CA directory the operator chose
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load seed CA: %w: %s is missing (run \"metacircular ca init\")", ErrNotInitialized, certPath)
	}
	if err != nil {
		return nil, fmt.Errorf("load seed CA: %w", err)
	}
	certs, err := tlsutil.ParseChain(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load seed CA: %s: %w", certPath, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("load seed CA: %s: want exactly one certificate, found %d", certPath, len(certs))
	}
	cert := certs[0]
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("load seed CA: %s is not a CA certificate", certPath)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("load seed CA: %s is not self-signed: %w", certPath, err)
	}
	if now := time.Now(); now.After(cert.NotAfter) {
		return nil, fmt.Errorf("load seed CA: %s expired at %s", certPath, cert.NotAfter.Format(time.RFC3339))
	}

	key, err := readKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load seed CA: %w: %s is missing", ErrNotInitialized, keyPath)
	}
	if err != nil {
		return nil, fmt.Errorf("load seed CA: %w", err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("load seed CA: %s does not match %s", keyPath, certPath)
	}
	return &CA{dir: dir, cert: cert, certPEM: certPEM, key: key}, nil
}

// CertPath returns the path of the root certificate (PEM), the file clients
// use as their trust anchor.
func (ca *CA) CertPath() string { return filepath.Join(ca.dir, caCertFile) }

// Certificate returns the parsed root certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Pool returns a new certificate pool holding only the root.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// Issue issues a certificate for name, writing issued/<name>.crt (full
// chain) and issued/<name>.key. If a certificate for name already exists,
// chains to this root, matches its key, covers exactly the requested SANs
// and stays valid for more than 30 days (or half the requested validity,
// if shorter), it is returned unchanged. Invalid input writes nothing.
func (ca *CA) Issue(name string, req IssueRequest) (Issued, error) {
	if err := ValidateName(name); err != nil {
		return Issued{}, fmt.Errorf("issue certificate: %w", err)
	}
	dnsNames, ips, err := normalizeSANs(req.DNSNames, req.IPs)
	if err != nil {
		return Issued{}, fmt.Errorf("issue certificate %q: %w", name, err)
	}
	validity := req.Validity
	if validity == 0 {
		validity = DefaultValidity
	}
	if validity < 0 {
		return Issued{}, fmt.Errorf("issue certificate %q: validity %s is negative", name, validity)
	}

	ca.mu.Lock()
	defer ca.mu.Unlock()

	dir := filepath.Join(ca.dir, issuedDir)
	out := Issued{
		CertPath: filepath.Join(dir, name+".crt"),
		KeyPath:  filepath.Join(dir, name+".key"),
	}
	margin := min(reuseMargin, validity/2)
	if leaf := ca.reusable(out, dnsNames, ips, margin); leaf != nil {
		out.Leaf = leaf
		return out, nil
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Issued{}, fmt.Errorf("issue certificate %q: create directory: %w", name, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, fmt.Errorf("issue certificate %q: generate key: %w", name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return Issued{}, fmt.Errorf("issue certificate %q: %w", name, err)
	}
	ski, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return Issued{}, fmt.Errorf("issue certificate %q: %w", name, err)
	}
	cn := name
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              dnsNames,
		IPAddresses:           ips,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return Issued{}, fmt.Errorf("issue certificate %q: sign: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return Issued{}, fmt.Errorf("issue certificate %q: parse: %w", name, err)
	}
	// The key goes first: a crash between the two writes leaves a pair that
	// does not match, which the next Issue detects and replaces.
	if err := writeKey(out.KeyPath, key); err != nil {
		return Issued{}, fmt.Errorf("issue certificate %q: %w", name, err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.certPEM...)
	if err := atomicfile.Write(out.CertPath, chain, 0o644); err != nil {
		return Issued{}, fmt.Errorf("issue certificate %q: %w", name, err)
	}
	out.Leaf = leaf
	return out, nil
}

// ValidateName reports whether name is acceptable as an issued certificate
// name: a safe file name made of lower-case letters, digits, dots and
// hyphens, starting with a letter or digit.
func ValidateName(name string) error {
	ok := name != "" && len(name) <= maxNameLen
	for i, c := range name {
		lowerOrDigit := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !lowerOrDigit && (i == 0 || (c != '.' && c != '-')) {
			ok = false
			break
		}
	}
	if !ok {
		return fmt.Errorf("invalid name %q: want [a-z0-9][a-z0-9.-]*, at most %d characters", name, maxNameLen)
	}
	return nil
}

// reusable returns the existing leaf for out if it can be handed back
// unchanged, or nil if a new certificate must be issued.
func (ca *CA) reusable(out Issued, dnsNames []string, ips []net.IP, margin time.Duration) *x509.Certificate {
	chainPEM, err := os.ReadFile(out.CertPath)
	if err != nil {
		return nil
	}
	chain, err := tlsutil.ParseChain(chainPEM)
	if err != nil || len(chain) != 2 || !bytes.Equal(chain[1].Raw, ca.cert.Raw) {
		return nil
	}
	leaf := chain[0]
	if leaf.CheckSignatureFrom(ca.cert) != nil {
		return nil
	}
	now := time.Now()
	if now.Before(leaf.NotBefore) || leaf.NotAfter.Sub(now) <= margin {
		return nil
	}
	if !slices.Equal(leaf.DNSNames, dnsNames) || !slices.EqualFunc(leaf.IPAddresses, ips, net.IP.Equal) {
		return nil
	}
	key, err := readKey(out.KeyPath)
	if err != nil || !publicKeysEqual(leaf.PublicKey, key.Public()) {
		return nil
	}
	return leaf
}

// normalizeSANs validates the requested names and addresses and returns
// them lower-cased, de-duplicated and sorted, so that the same request
// always compares equal to the certificate it produced.
func normalizeSANs(dnsNames []string, ips []net.IP) ([]string, []net.IP, error) {
	var names []string
	for _, n := range dnsNames {
		n = strings.ToLower(strings.TrimSpace(n))
		if !validDNSName(n) {
			return nil, nil, fmt.Errorf("invalid DNS name %q", n)
		}
		names = append(names, n)
	}
	slices.Sort(names)
	names = slices.Compact(names)

	var addrs []net.IP
	for _, ip := range ips {
		switch {
		case ip.To4() != nil:
			ip = ip.To4()
		case len(ip) == net.IPv6len:
		default:
			return nil, nil, fmt.Errorf("invalid IP address %v", ip)
		}
		addrs = append(addrs, slices.Clone(ip))
	}
	slices.SortFunc(addrs, func(a, b net.IP) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return bytes.Compare(a, b)
	})
	addrs = slices.CompactFunc(addrs, net.IP.Equal)

	if len(names) == 0 && len(addrs) == 0 {
		return nil, nil, errors.New("at least one DNS name or IP address is required")
	}
	return names, addrs, nil
}

// validDNSName accepts lower-case host names with an optional leading
// wildcard label.
func validDNSName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	return true
}

func createRoot(key crypto.Signer) ([]byte, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("create root: %w", err)
	}
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, fmt.Errorf("create root: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: RootCommonName, Organization: []string{"Metacircular"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(rootValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create root: sign: %w", err)
	}
	return der, nil
}

// randomSerial returns a random positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID derives the key identifier as in RFC 5280 §4.2.1.2 (1): the
// SHA-1 of the subjectPublicKey bit string. SHA-1 is the standard's choice
// here and serves as an identifier, not as a security property.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes) //nolint:gosec // an identifier, not a security property
	return sum[:], nil
}

func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the CA directory the operator chose
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	block, _ := pem.Decode(data)
	clear(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("read key: %s: no PKCS#8 \"PRIVATE KEY\" PEM block", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	clear(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read key: %s: %w", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("read key: %s: %T cannot sign", path, key)
	}
	return signer, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	defer clear(data)
	return atomicfile.Write(path, data, 0o600)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
}
