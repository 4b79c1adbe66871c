package server_test

import (
	"crypto/x509"
	"encoding/pem"
	"strconv"
	"strings"
	"testing"

	mcnsclient "git.metacircular.net/metacircular/mcns/client"
	"git.metacircular.net/metacircular/metacrypt/acmeclient"
)

// TestACMEClient runs metacrypt/acmeclient — what the MCP agent calls —
// against the real server: EAB credentials from Metacrypt for its MCIAS
// identity, http-01 with its own listener, dns-01 through the real MCNS,
// revocation; and a human logging in to MCIAS whose identity may not
// have the names.
func TestACMEClient(t *testing.T) {
	e := startACME(t, "")
	ctx := t.Context()
	c, err := acmeclient.New(acmeclient.Config{
		Directory: e.directory, CACert: env.ca.CertPath(), Token: env.tokens[agent], Metacrypt: e.grpc,
		HTTP01Addr: "127.0.0.1:" + strconv.Itoa(e.httpPort), MCNS: mcns.grpc, DNSResolvers: []string{mcns.dns},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	pool := x509.NewCertPool()
	root := do(t, "GET", e.rest+"/v1/pki/pki/ca", "", nil)
	pool.AppendCertsFromPEM(root.body)

	for _, tc := range []struct {
		name      string
		challenge acmeclient.Challenge
		keyType   string
		names     []string
	}{
		{"http-01", acmeclient.HTTP01, "", []string{svcName("client-http"), "127.0.0.1"}},
		{"dns-01", acmeclient.DNS01, "rsa-2048", []string{svcName("client-dns")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := c.Obtain(ctx, acmeclient.Request{Names: tc.names, KeyType: tc.keyType, Challenge: tc.challenge})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(b.ChainPEM, "BEGIN CERTIFICATE") != 2 || !strings.HasPrefix(b.ChainPEM, b.CertificatePEM) || !strings.Contains(b.PrivateKeyPEM, "PRIVATE KEY") {
				t.Fatalf("bundle %+v", b)
			}
			blk, rest := pem.Decode([]byte(b.ChainPEM))
			leaf, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			inter := x509.NewCertPool()
			inter.AppendCertsFromPEM(rest)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: tc.names[0]}); err != nil {
				t.Fatalf("chain does not verify: %v", err)
			}
			rec, err := e.client(t, admin).Certificate(ctx, "pki", b.Serial)
			if err != nil || rec.RequestedBy != agent {
				t.Fatalf("record %+v %v", rec, err)
			}
			if tc.challenge == acmeclient.DNS01 {
				left, err := mcnsClient(t, admin).ListRecords(ctx, mcnsZone, mcnsclient.Filter{Type: "TXT"})
				if err != nil || len(left) != 0 {
					t.Fatalf("TXT records left: %+v %v", left, err)
				}
			}
			if err := c.Revoke(ctx, b.CertificatePEM); err != nil {
				t.Fatal(err)
			}
			if rec, _ := e.client(t, admin).Certificate(ctx, "pki", b.Serial); !rec.Revoked {
				t.Fatal("not revoked")
			}
		})
	}

	// A human through an MCIAS login: registered, but alice's identity
	// has no issuance limits, so the order is refused.
	human, err := acmeclient.New(acmeclient.Config{
		Directory: e.directory, CACert: env.ca.CertPath(), MCIAS: env.mciasGRPC, Username: alice, Password: alice + "-password-123",
		Metacrypt: e.grpc, HTTP01Addr: "127.0.0.1:" + strconv.Itoa(e.httpPort),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = human.Obtain(ctx, acmeclient.Request{Names: []string{svcName("alice")}})
	if err == nil || !strings.Contains(err.Error(), "rejectedIdentifier") {
		t.Fatalf("alice's order: %v", err)
	}
	if eabs, err := e.client(t, alice).EABs(ctx, "pki", ""); err != nil || len(eabs) != 1 || eabs[0].Status != "used" {
		t.Fatalf("alice's credentials: %+v %v", eabs, err)
	}
}
