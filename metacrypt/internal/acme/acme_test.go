package acme_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/acme"
	"git.metacircular.net/metacircular/metacrypt/internal/acme/kvstore"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// memStorage is engine.Storage in memory.
type memStorage struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStorage) Get(_ context.Context, kind, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[kind+"\x00"+key]
	if !ok {
		return nil, engine.ErrNotFound
	}
	return slices.Clone(v), nil
}

func (s *memStorage) Put(_ context.Context, kind, key string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[kind+"\x00"+key] = slices.Clone(v)
	return nil
}

func (s *memStorage) Delete(_ context.Context, kind, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, kind+"\x00"+key)
	return nil
}

func (s *memStorage) List(_ context.Context, kind string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.m {
		if len(k) > len(kind) && k[:len(kind)+1] == kind+"\x00" {
			out = append(out, k[len(kind)+1:])
		}
	}
	slices.Sort(out)
	return out, nil
}

type mounts struct{ st *memStorage }

func (m mounts) Resolve(_ context.Context, name string) (engine.Mount, error) {
	if name != "pki" {
		return engine.Mount{}, engine.ErrNotFound
	}
	return engine.Mount{ID: "id", Name: name, Type: "ca", Storage: m.st}, nil
}

func (m mounts) Names(context.Context) ([]string, error) { return []string{"pki"}, nil }

// fakeCA authorizes the names under allowed.
type fakeCA struct {
	pki.Issuer
	allowed func(pki.Names) bool
}

func (f fakeCA) Authorize(_ context.Context, _ engine.Caller, _, _ string, n pki.Names) error {
	if !f.allowed(n) {
		return engine.ErrDenied
	}
	return nil
}

func (fakeCA) IssuerDER(context.Context, string, string) ([]byte, error) { return []byte{1}, nil }

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newService(c *clock, cfg acme.Config) (*acme.Service, *memStorage) {
	st := &memStorage{m: map[string][]byte{}}
	s := acme.New(acme.Deps{
		Mounts: mounts{st}, NewStore: kvstore.New, Sealed: func() bool { return false }, Config: cfg, Now: c.now,
		CA: fakeCA{allowed: func(n pki.Names) bool { return !slices.Contains(n.DNS, "denied.example") }},
	})
	return s, st
}

// TestNoncesSingleUseBoundedExpiring: a nonce works once, expires after
// NonceLifetime, and the store keeps at most MaxNonces (plus one pruning
// interval) however many are issued.
func TestNoncesSingleUseBoundedExpiring(t *testing.T) {
	ctx := t.Context()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s, st := newService(c, acme.Config{MaxNonces: 50, NonceLifetime: time.Minute})
	n, err := s.NewNonce(ctx, "pki")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UseNonce(ctx, "pki", n); err != nil {
		t.Fatal(err)
	}
	if err := s.UseNonce(ctx, "pki", n); !acme.Is(err, acme.ErrBadNonce) {
		t.Fatalf("second use: %v", err)
	}
	for _, bad := range []string{"", "x", "0000000000000000" + "AAAAAAAAAAAAAAAAAAAAAA", n + "x"} {
		if err := s.UseNonce(ctx, "pki", bad); !acme.Is(err, acme.ErrBadNonce) {
			t.Fatalf("nonce %q: %v", bad, err)
		}
	}
	old, _ := s.NewNonce(ctx, "pki")
	c.t = c.t.Add(2 * time.Minute)
	if err := s.UseNonce(ctx, "pki", old); !acme.Is(err, acme.ErrBadNonce) {
		t.Fatalf("expired nonce: %v", err)
	}
	var last string
	for range 1000 {
		c.t = c.t.Add(time.Millisecond)
		if last, err = s.NewNonce(ctx, "pki"); err != nil {
			t.Fatal(err)
		}
	}
	list, _ := st.List(ctx, "acme/nonce")
	if len(list) > 50+100 {
		t.Fatalf("%d nonces stored, want at most %d", len(list), 150)
	}
	if err := s.UseNonce(ctx, "pki", last); err != nil {
		t.Fatalf("the newest nonce was pruned: %v", err)
	}
	if _, err := s.NewNonce(ctx, "nosuch"); apierr.KindOf(err) != apierr.NotFound {
		t.Fatalf("unknown mount: %v", err)
	}
}

// TestNewOrderIdentifiers: identifiers are normalized and deduplicated,
// refused ones named, and each authorization offers the challenges its
// identifier allows.
func TestNewOrderIdentifiers(t *testing.T) {
	ctx := t.Context()
	c := &clock{t: time.Now()}
	s, _ := newService(c, acme.Config{})
	a := acme.Account{ID: "acct", Issuer: "services", Status: acme.StatusValid, Caller: engine.Caller{Username: "mcp-agent"}}
	o, err := s.NewOrder(ctx, "pki", a, acme.NewOrderRequest{Identifiers: []acme.Identifier{
		{Type: "dns", Value: "WWW.Example."}, {Type: "dns", Value: "www.example"}, {Type: "ip", Value: "::ffff:10.0.0.1"},
		{Type: "dns", Value: "*.wild.example"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []acme.Identifier{{Type: "dns", Value: "www.example"}, {Type: "ip", Value: "10.0.0.1"}, {Type: "dns", Value: "*.wild.example"}}
	if !slices.Equal(o.Identifiers, want) || len(o.Authzs) != 3 || o.Status != acme.StatusPending {
		t.Fatalf("order %+v", o)
	}
	offered := func(i int) []acme.ChallengeType {
		az, err := s.Authz(ctx, "pki", a, o.Authzs[i])
		if err != nil {
			t.Fatal(err)
		}
		var ts []acme.ChallengeType
		for _, ch := range az.Challenges {
			ts = append(ts, ch.Type)
		}
		return ts
	}
	if got := offered(0); !slices.Equal(got, []acme.ChallengeType{acme.HTTP01, acme.DNS01, acme.TLSALPN01}) {
		t.Errorf("DNS name: %v", got)
	}
	if got := offered(1); !slices.Equal(got, []acme.ChallengeType{acme.HTTP01, acme.TLSALPN01}) {
		t.Errorf("IP: %v", got)
	}
	if got := offered(2); !slices.Equal(got, []acme.ChallengeType{acme.DNS01}) {
		t.Errorf("wildcard: %v", got)
	}
	for _, c := range []struct {
		ids  []acme.Identifier
		want string
	}{
		{nil, acme.ErrMalformed},
		{[]acme.Identifier{{Type: "email", Value: "a@b"}}, acme.ErrUnsupportedIdentifier},
		{[]acme.Identifier{{Type: "dns", Value: "bad_name.example"}}, acme.ErrRejectedIdentifier},
		{[]acme.Identifier{{Type: "dns", Value: "10.0.0.1"}}, acme.ErrRejectedIdentifier},
		{[]acme.Identifier{{Type: "ip", Value: "fe80::1%eth0"}}, acme.ErrRejectedIdentifier},
		{[]acme.Identifier{{Type: "dns", Value: "denied.example"}}, acme.ErrRejectedIdentifier},
	} {
		_, err := s.NewOrder(ctx, "pki", a, acme.NewOrderRequest{Identifiers: c.ids})
		if !acme.Is(err, c.want) {
			t.Errorf("%v: %v, want %s", c.ids, err, c.want)
		}
	}
	if _, err := s.NewOrder(ctx, "pki", a, acme.NewOrderRequest{Identifiers: want[:1], NotAfter: "2030-01-01T00:00:00Z"}); !acme.Is(err, acme.ErrMalformed) {
		t.Errorf("notAfter: %v", err)
	}
	// Another account sees none of it.
	other := a
	other.ID = "other"
	if _, err := s.Order(ctx, "pki", other, o.ID); !acme.Is(err, acme.ErrUnauthorized) {
		t.Errorf("another account's order: %v", err)
	}
	// Expired: the order reads as invalid.
	c.t = c.t.Add(acme.DefaultOrderLifetime + time.Minute)
	if got, err := s.Order(ctx, "pki", a, o.ID); err != nil || got.Status != acme.StatusInvalid {
		t.Errorf("expired order: %+v %v", got, err)
	}
}

func TestProblemOf(t *testing.T) {
	for _, c := range []struct {
		err    error
		typ    string
		status int
	}{
		{engine.ErrSealed, acme.ErrServerInternal, http.StatusServiceUnavailable},
		{engine.ErrDenied, acme.ErrUnauthorized, http.StatusForbidden},
		{apierr.InvalidField("csr_pem", "bad"), acme.ErrBadCSR, http.StatusBadRequest},
		{engine.ErrNotFound, acme.ErrMalformed, http.StatusNotFound},
		{context.DeadlineExceeded, acme.ErrServerInternal, http.StatusServiceUnavailable},
		{acme.NewProblem(acme.ErrBadNonce, "x"), acme.ErrBadNonce, http.StatusBadRequest},
		{x509.ErrUnsupportedAlgorithm, acme.ErrServerInternal, http.StatusInternalServerError},
	} {
		p := acme.ProblemOf(c.err, acme.ErrBadCSR)
		if p.Type != acme.ProblemNS+c.typ || p.Status != c.status {
			t.Errorf("%v: %s %d, want %s %d", c.err, p.Type, p.Status, c.typ, c.status)
		}
	}
	if p := acme.ProblemOf(engine.ErrSealed, acme.ErrMalformed); p.RetryAfter == 0 {
		t.Error("sealed without Retry-After")
	}
}

// TestEABNeverLooksLikeAnOption: key IDs and HMAC keys are typed into
// command lines (certbot --eab-kid, lego --hmac), so neither may start
// with "-".
func TestEABNeverLooksLikeAnOption(t *testing.T) {
	c := &clock{t: time.Now()}
	s, _ := newService(c, acme.Config{})
	admin := engine.Caller{Username: "admin", Roles: []string{engine.RoleAdmin}}
	for i := range 300 {
		e, err := s.CreateEAB(t.Context(), admin, "pki", acme.EABRequest{For: engine.Caller{Username: fmt.Sprintf("svc%d", i/90)}})
		if err != nil {
			t.Fatal(err)
		}
		if k := base64.RawURLEncoding.EncodeToString(e.Key); k[0] == '-' || e.KID[0] == '-' || len(e.KID) != 32 {
			t.Fatalf("kid %q key %q", e.KID, k)
		}
	}
}
