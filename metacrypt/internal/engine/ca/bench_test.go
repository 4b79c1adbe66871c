package ca

import (
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// The benchmarks measure a stored P-256 issuance through the engine as a
// non-admin caller (mount lookup, the ACL rule and issuance limit read
// from the barrier, the issuer's key read and parsed, signing, the
// certificate recorded in SQLite), 16 requests at a time on
// GOMAXPROCS as the server runs them; bench/metacrypt measures the same
// through the network API beside step-ca.

var benchParallelism = 16

func BenchmarkIssueP256(b *testing.B) {
	f := newFixture(b, IssuerRequest{})
	ctx := b.Context()
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := fmt.Sprintf("b%d.svc.mcp.test", seq.Add(1))
			if _, err := f.svc.Issue(ctx, agent, "pki", IssueRequest{Issuer: "services", DNSNames: []string{name}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkSignCSRP256(b *testing.B) {
	f := newFixture(b, IssuerRequest{})
	ctx := b.Context()
	csrs := make([]*x509.CertificateRequest, 256)
	for i := range csrs {
		csrs[i] = newCSR(b, fmt.Sprintf("c%d.svc.mcp.test", i))
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			csr := csrs[seq.Add(1)%int64(len(csrs))]
			if _, err := f.svc.SignCSR(ctx, agent, "pki", "services", csr, pki.SignOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func init() {
	if v := os.Getenv("BENCH_PAR"); v != "" {
		benchParallelism, _ = strconv.Atoi(v)
	}
}
