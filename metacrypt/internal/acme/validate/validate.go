package validate

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
)

// Network is the validators' network access.
type Network interface {
	// Get fetches an http:// URL (following redirects as Net's policy
	// allows).
	Get(ctx context.Context, url string) (*http.Response, error)
	// LookupTXT returns the TXT strings of a name (each record's strings
	// joined); a name without TXT records is no error and no strings.
	LookupTXT(ctx context.Context, name string) ([]string, error)
	// DialTLS connects to host:port with TLS.
	DialTLS(ctx context.Context, host string, port int, cfg *tls.Config) (*tls.Conn, error)
}

// Validator implements acme.Validator.
type Validator struct {
	Net Network
	// HTTPPort and TLSPort are where http-01 and tls-alpn-01 connect
	// (80 and 443 by default; tests use high ports).
	HTTPPort, TLSPort int
}

var _ acme.Validator = Validator{}

// maxBody bounds an http-01 answer; a key authorization is under 100
// bytes.
const maxBody = 8 << 10

// Validate implements acme.Validator.
func (v Validator) Validate(ctx context.Context, t acme.ChallengeType, id acme.Identifier, token, keyAuth string) error {
	switch t {
	case acme.HTTP01:
		return v.http01(ctx, id, token, keyAuth)
	case acme.DNS01:
		return v.dns01(ctx, id, keyAuth)
	case acme.TLSALPN01:
		return v.tlsALPN01(ctx, id, keyAuth)
	}
	return acme.NewProblem(acme.ErrMalformed, "unknown challenge type %q", t)
}

// hostPort writes host:port with brackets around IPv6 addresses.
func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

func (v Validator) http01(ctx context.Context, id acme.Identifier, token, keyAuth string) error {
	port := v.HTTPPort
	if port == 0 {
		port = 80
	}
	url := "http://" + hostPort(id.Value, port) + "/.well-known/acme-challenge/" + token
	resp, err := v.Net.Get(ctx, url)
	if err != nil {
		return acme.NewProblem(acme.ErrConnection, "fetching %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return acme.NewProblem(acme.ErrUnauthorized, "fetching %s: HTTP %d, want 200", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return acme.NewProblem(acme.ErrConnection, "reading %s: %v", url, err)
	}
	if len(body) > maxBody {
		return acme.NewProblem(acme.ErrUnauthorized, "the answer of %s is longer than %d bytes", url, maxBody)
	}
	// RFC 8555 §8.3: the body may end with white space.
	if got := strings.TrimRight(string(body), " \t\r\n"); got != keyAuth {
		return acme.NewProblem(acme.ErrIncorrectResponse, "%s answered %q, not the key authorization", url, truncate(got))
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// DNS01Value is the TXT value of a dns-01 challenge: base64url of the
// SHA-256 of the key authorization.
func DNS01Value(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (v Validator) dns01(ctx context.Context, id acme.Identifier, keyAuth string) error {
	if id.Type != acme.IdentDNS {
		return acme.NewProblem(acme.ErrMalformed, "dns-01 validates DNS names only")
	}
	name := "_acme-challenge." + id.Value
	txts, err := v.Net.LookupTXT(ctx, name)
	if err != nil {
		return acme.NewProblem(acme.ErrDNS, "TXT lookup of %s: %v", name, err)
	}
	want := DNS01Value(keyAuth)
	if slices.Contains(txts, want) {
		return nil
	}
	if len(txts) == 0 {
		return acme.NewProblem(acme.ErrIncorrectResponse, "no TXT record at %s", name)
	}
	return acme.NewProblem(acme.ErrIncorrectResponse, "no TXT record at %s holds the expected value (found %d others)", name, len(txts))
}

// ALPNProto is tls-alpn-01's ALPN protocol.
const ALPNProto = "acme-tls/1"

// idPeACMEIdentifier is the acmeIdentifier extension (RFC 8737 §6.1).
var idPeACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// reverseName is the in-addr.arpa or ip6.arpa name of an address, the
// SNI of an IP identifier's tls-alpn-01 (RFC 8738 §6).
func reverseName(a netip.Addr) string {
	if a.Is4() {
		b := a.As4()
		return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa", b[3], b[2], b[1], b[0])
	}
	b := a.As16()
	var sb strings.Builder
	for i := len(b) - 1; i >= 0; i-- {
		fmt.Fprintf(&sb, "%x.%x.", b[i]&0xf, b[i]>>4)
	}
	return sb.String() + "ip6.arpa"
}

func (v Validator) tlsALPN01(ctx context.Context, id acme.Identifier, keyAuth string) error {
	port := v.TLSPort
	if port == 0 {
		port = 443
	}
	sni := id.Value
	var ip netip.Addr
	if id.Type == acme.IdentIP {
		a, err := netip.ParseAddr(id.Value)
		if err != nil {
			return acme.NewProblem(acme.ErrMalformed, "%q is not an IP address", id.Value)
		}
		ip, sni = a, reverseName(a)
	}
	cfg := &tls.Config{
		ServerName: sni, NextProtos: []string{ALPNProto}, MinVersion: tls.VersionTLS12,
		// The certificate is self-signed by design (RFC 8737 §3); its
		// content is what is checked below.
		InsecureSkipVerify: true, //nolint:gosec // see above
	}
	conn, err := v.Net.DialTLS(ctx, id.Value, port, cfg)
	if err != nil {
		return acme.NewProblem(acme.ErrConnection, "TLS connection to %s: %v", hostPort(id.Value, port), err)
	}
	defer func() { _ = conn.Close() }()
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol != ALPNProto {
		return acme.NewProblem(acme.ErrTLS, "%s did not negotiate ALPN %s", hostPort(id.Value, port), ALPNProto)
	}
	if len(cs.PeerCertificates) == 0 {
		return acme.NewProblem(acme.ErrTLS, "no certificate")
	}
	return checkALPNCert(cs.PeerCertificates[0], id, ip, keyAuth)
}

// checkALPNCert checks a tls-alpn-01 certificate: exactly the identifier
// as its one SAN, and a critical acmeIdentifier extension holding the
// SHA-256 of the key authorization.
func checkALPNCert(c *x509.Certificate, id acme.Identifier, ip netip.Addr, keyAuth string) error {
	switch {
	case id.Type == acme.IdentDNS && (len(c.DNSNames) != 1 || !strings.EqualFold(c.DNSNames[0], id.Value) || len(c.IPAddresses) != 0):
		return acme.NewProblem(acme.ErrIncorrectResponse, "the certificate's SANs are not exactly %s", id.Value)
	case id.Type == acme.IdentIP:
		if len(c.IPAddresses) != 1 || len(c.DNSNames) != 0 {
			return acme.NewProblem(acme.ErrIncorrectResponse, "the certificate's SANs are not exactly %s", id.Value)
		}
		if a, ok := netip.AddrFromSlice(c.IPAddresses[0]); !ok || a.Unmap() != ip {
			return acme.NewProblem(acme.ErrIncorrectResponse, "the certificate's SANs are not exactly %s", id.Value)
		}
	}
	if len(c.EmailAddresses) > 0 || len(c.URIs) > 0 {
		return acme.NewProblem(acme.ErrIncorrectResponse, "the certificate has other SANs")
	}
	want := sha256.Sum256([]byte(keyAuth))
	var ext *pkix.Extension
	for i := range c.Extensions {
		if c.Extensions[i].Id.Equal(idPeACMEIdentifier) {
			if ext != nil {
				return acme.NewProblem(acme.ErrIncorrectResponse, "two acmeIdentifier extensions")
			}
			ext = &c.Extensions[i]
		}
	}
	if ext == nil {
		return acme.NewProblem(acme.ErrIncorrectResponse, "the certificate has no acmeIdentifier extension")
	}
	if !ext.Critical {
		return acme.NewProblem(acme.ErrIncorrectResponse, "the acmeIdentifier extension is not critical")
	}
	var got []byte
	rest, err := asn1.Unmarshal(ext.Value, &got)
	if err != nil || len(rest) != 0 || len(got) != sha256.Size {
		return acme.NewProblem(acme.ErrIncorrectResponse, "the acmeIdentifier extension is not a SHA-256 OCTET STRING")
	}
	if !slices.Equal(got, want[:]) {
		return acme.NewProblem(acme.ErrIncorrectResponse, "the acmeIdentifier extension does not hold the key authorization's digest")
	}
	return nil
}

// errNoAddress: a name resolved to no address.
var errNoAddress = errors.New("no address")
