package validate_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	xacme "golang.org/x/crypto/acme"

	"git.metacircular.net/metacircular/metacrypt/internal/acme"
	"git.metacircular.net/metacircular/metacrypt/internal/acme/validate"
)

const keyAuth = "token123.thumbprint456"

func port(t *testing.T, addr net.Addr) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(addr.String())
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// serve runs handler on 127.0.0.1 and returns its port.
func serve(t *testing.T, h http.Handler) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return port(t, ln.Addr())
}

func problemType(err error) string {
	if err == nil {
		return ""
	}
	p := acme.ProblemOf(err, acme.ErrMalformed)
	return strings.TrimPrefix(p.Type, acme.ProblemNS)
}

func TestHTTP01(t *testing.T) {
	redirectTo := 0
	p := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
		case "good":
			fmt.Fprint(w, keyAuth+"\r\n")
		case "wrong":
			fmt.Fprint(w, "something else")
		case "huge":
			fmt.Fprint(w, strings.Repeat("x", 20000))
		case "redirect-same-port":
			http.Redirect(w, r, "/.well-known/acme-challenge/good", http.StatusFound)
		case "redirect-other-port":
			http.Redirect(w, r, "http://127.0.0.1:"+strconv.Itoa(redirectTo)+"/.well-known/acme-challenge/good", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	redirectTo = serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, keyAuth) }))
	v := validate.Validator{Net: &validate.Net{HTTPPort: p}, HTTPPort: p}
	for token, want := range map[string]string{
		"good": "", "redirect-same-port": "", "wrong": "incorrectResponse", "huge": "unauthorized",
		"missing": "unauthorized", "redirect-other-port": "connection",
	} {
		t.Run(token, func(t *testing.T) {
			err := v.Validate(t.Context(), acme.HTTP01, acme.Identifier{Type: acme.IdentIP, Value: "127.0.0.1"}, token, keyAuth)
			if got := problemType(err); got != want {
				t.Fatalf("got %q (%v), want %q", got, err, want)
			}
		})
	}
	closed := validate.Validator{Net: &validate.Net{}, HTTPPort: port(t, mustClosedAddr(t))}
	if got := problemType(closed.Validate(t.Context(), acme.HTTP01, acme.Identifier{Type: acme.IdentIP, Value: "127.0.0.1"}, "good", keyAuth)); got != "connection" {
		t.Fatalf("nothing listening: %q", got)
	}
}

func mustClosedAddr(t *testing.T) net.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr()
	_ = ln.Close()
	return a
}

// dnsServer answers TXT and A queries from zone, or with rcode for
// everything when rcode is not success.
func dnsServer(t *testing.T, rcode int, zone map[string][]dns.RR) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Rcode = rcode
		if rcode == dns.RcodeSuccess {
			q := req.Question[0]
			rrs, ok := zone[strings.ToLower(q.Name)]
			if !ok {
				m.Rcode = dns.RcodeNameError
			}
			for _, rr := range rrs {
				if rr.Header().Rrtype == q.Qtype {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestDNS01ResolversInOrder(t *testing.T) {
	value := validate.DNS01Value(keyAuth)
	txt := func(name string, v ...string) dns.RR {
		return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: v}
	}
	good := dnsServer(t, dns.RcodeSuccess, map[string][]dns.RR{
		"_acme-challenge.x.example.": {txt("_acme-challenge.x.example.", "other"), txt("_acme-challenge.x.example.", value[:10], value[10:])},
		"_acme-challenge.y.example.": {txt("_acme-challenge.y.example.", "other")},
	})
	servfail := dnsServer(t, dns.RcodeServerFailure, nil)
	dead := mustClosedAddr(t).String()
	id := func(n string) acme.Identifier { return acme.Identifier{Type: acme.IdentDNS, Value: n} }
	for _, c := range []struct {
		name      string
		resolvers []string
		id        acme.Identifier
		want      string
	}{
		{"found, split strings joined", []string{good}, id("x.example"), ""},
		{"after a SERVFAIL resolver", []string{servfail, good}, id("x.example"), ""},
		{"after a dead resolver", []string{dead, good}, id("x.example"), ""},
		{"wrong value", []string{good}, id("y.example"), "incorrectResponse"},
		{"NXDOMAIN is an answer", []string{good, servfail}, id("z.example"), "incorrectResponse"},
		{"every resolver fails", []string{servfail, dead}, id("x.example"), "dns"},
		{"IP identifier", []string{good}, acme.Identifier{Type: acme.IdentIP, Value: "10.0.0.1"}, "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := validate.Validator{Net: &validate.Net{Resolvers: c.resolvers, QueryTimeout: 300 * time.Millisecond}}
			if got := problemType(v.Validate(t.Context(), acme.DNS01, c.id, "token", keyAuth)); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// alpnCert makes a tls-alpn-01 certificate with the given SANs and
// acmeIdentifier extension value and criticality.
func alpnCert(t *testing.T, dnsNames []string, ips []net.IP, digest []byte, critical bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	val, _ := asn1.Marshal(digest)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "acme"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: dnsNames, IPAddresses: ips,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}, Critical: critical, Value: val}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func serveTLS(t *testing.T, cert tls.Certificate, protos []string, sni chan<- string) int {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		MinVersion: tls.VersionTLS12, NextProtos: protos,
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			select {
			case sni <- h.ServerName:
			default:
			}
			return &cert, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				if tc, ok := c.(*tls.Conn); ok {
					_ = tc.Handshake()
				}
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return port(t, ln.Addr())
}

func TestTLSALPN01(t *testing.T) {
	sum := sha256.Sum256([]byte(keyAuth))
	proto := []string{validate.ALPNProto}
	id := acme.Identifier{Type: acme.IdentDNS, Value: "localhost"}
	// x/crypto/acme's own responder certificate passes.
	xc := &xacme.Client{Key: mustKey(t)}
	good, err := xc.TLSALPN01ChallengeCert("tok", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	ka, _ := xc.HTTP01ChallengeResponse("tok")
	for _, c := range []struct {
		name    string
		cert    tls.Certificate
		protos  []string
		keyAuth string
		want    string
	}{
		{"x/crypto/acme's certificate", good, proto, ka, ""},
		{"ours", alpnCert(t, []string{"localhost"}, nil, sum[:], true), proto, keyAuth, ""},
		{"no ALPN", alpnCert(t, []string{"localhost"}, nil, sum[:], true), nil, keyAuth, "tls"},
		{"not critical", alpnCert(t, []string{"localhost"}, nil, sum[:], false), proto, keyAuth, "incorrectResponse"},
		{"wrong digest", alpnCert(t, []string{"localhost"}, nil, make([]byte, 32), true), proto, keyAuth, "incorrectResponse"},
		{"extra SAN", alpnCert(t, []string{"localhost", "other.example"}, nil, sum[:], true), proto, keyAuth, "incorrectResponse"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := serveTLS(t, c.cert, c.protos, nil)
			v := validate.Validator{Net: &validate.Net{}, TLSPort: p}
			if got := problemType(v.Validate(t.Context(), acme.TLSALPN01, id, "tok", c.keyAuth)); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
	// An IP identifier: the SNI is its reverse name (RFC 8738 §6).
	sni := make(chan string, 1)
	p := serveTLS(t, alpnCert(t, nil, []net.IP{net.IPv4(127, 0, 0, 1)}, sum[:], true), proto, sni)
	v := validate.Validator{Net: &validate.Net{}, TLSPort: p}
	if err := v.Validate(context.Background(), acme.TLSALPN01, acme.Identifier{Type: acme.IdentIP, Value: "127.0.0.1"}, "tok", keyAuth); err != nil {
		t.Fatal(err)
	}
	if got := <-sni; got != "1.0.0.127.in-addr.arpa" {
		t.Fatalf("SNI %q", got)
	}
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
