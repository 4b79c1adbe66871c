package acme

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/names"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// MaxIdentifiers bounds an order's identifiers (the CA's limit on names).
const MaxIdentifiers = 100

// NewOrderRequest is a newOrder payload (RFC 8555 §7.4, RFC 9773 §5).
type NewOrderRequest struct {
	Identifiers []Identifier `json:"identifiers"`
	NotBefore   string       `json:"notBefore,omitempty"`
	NotAfter    string       `json:"notAfter,omitempty"`
	Replaces    string       `json:"replaces,omitempty"`
}

// normalize validates identifiers and returns them normalized (DNS names
// in lower case without a trailing dot, IPs in canonical form),
// duplicates dropped, with the names the policy checks.
func normalize(ids []Identifier) ([]Identifier, pki.Names, error) {
	var n pki.Names
	if len(ids) == 0 {
		return nil, n, NewProblem(ErrMalformed, "an order needs at least one identifier")
	}
	if len(ids) > MaxIdentifiers {
		return nil, n, NewProblem(ErrRejectedIdentifier, "more than %d identifiers", MaxIdentifiers)
	}
	out := make([]Identifier, 0, len(ids))
	for _, id := range ids {
		switch id.Type {
		case IdentDNS:
			if _, err := netip.ParseAddr(id.Value); err == nil {
				return nil, n, rejected(id, "%q is an IP address: use an identifier of type ip", id.Value)
			}
			name, err := names.ParseDNS(id.Value)
			if err != nil {
				return nil, n, rejected(id, "%v", err)
			}
			id.Value = name
			if !slices.Contains(n.DNS, name) {
				n.DNS = append(n.DNS, name)
			}
		case IdentIP:
			a, err := netip.ParseAddr(id.Value)
			if err != nil || a.Zone() != "" {
				return nil, n, rejected(id, "%q is not an IP address", id.Value)
			}
			a = a.Unmap()
			id.Value = a.String()
			if !slices.Contains(n.IPs, a) {
				n.IPs = append(n.IPs, a)
			}
		default:
			p := NewProblem(ErrUnsupportedIdentifier, "identifier type %q (dns or ip)", id.Type)
			p.Identifier = &Identifier{Type: id.Type, Value: id.Value}
			return nil, n, p
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, n, nil
}

func rejected(id Identifier, format string, a ...any) *Problem {
	p := NewProblem(ErrRejectedIdentifier, format, a...)
	p.Identifier = &Identifier{Type: id.Type, Value: id.Value}
	return p
}

// challengesFor are the challenges offered for an identifier: dns-01
// only for a wildcard, no dns-01 for an IP address (RFC 8738 §7).
func challengesFor(id Identifier, wildcard bool) []Challenge {
	var types []ChallengeType
	switch {
	case wildcard:
		types = []ChallengeType{DNS01}
	case id.Type == IdentIP:
		types = []ChallengeType{HTTP01, TLSALPN01}
	default:
		types = []ChallengeType{HTTP01, DNS01, TLSALPN01}
	}
	out := make([]Challenge, len(types))
	for i, t := range types {
		out[i] = Challenge{Type: t, Token: newID(32), Status: StatusPending}
	}
	return out
}

// NewOrder creates an order and its authorizations. The identifiers are
// checked against the account identity's policy (sign on the issuer,
// issuance limits on every name) first, so a name the identity may not
// have fails here, not at finalization.
func (s *Service) NewOrder(ctx context.Context, mount string, a Account, r NewOrderRequest) (Order, error) {
	if r.NotBefore != "" || r.NotAfter != "" {
		return Order{}, NewProblem(ErrMalformed, "notBefore and notAfter are not supported: the issuer's default TTL applies")
	}
	ids, n, err := normalize(r.Identifiers)
	if err != nil {
		return Order{}, err
	}
	st, err := s.store(ctx, mount)
	if err != nil {
		return Order{}, err
	}
	if err := s.d.CA.Authorize(ctx, a.Caller, mount, a.Issuer, n); err != nil {
		switch apierr.KindOf(err) {
		case apierr.Denied, apierr.Invalid:
			p := NewProblem(ErrRejectedIdentifier, "%s may not have these names issued: %s", a.Caller.Username, apierr.Describe(err).Message)
			return Order{}, p.withStatus(http.StatusForbidden)
		}
		return Order{}, err
	}
	now := s.now()
	o := Order{
		ID: newID(16), Account: a.ID, Issuer: a.Issuer, Status: StatusPending, Expires: now.Add(s.d.Config.OrderLifetime),
		Identifiers: ids, CreatedAt: now,
	}
	if r.Replaces != "" {
		if err := s.checkReplaces(ctx, st, a, r.Replaces); err != nil {
			return Order{}, err
		}
		o.Replaces = r.Replaces
	}
	for _, id := range ids {
		az := Authz{ID: newID(16), Account: a.ID, Order: o.ID, Issuer: a.Issuer, Identifier: id, Status: StatusPending, Expires: o.Expires}
		if names.IsWildcard(id.Value) {
			az.Identifier.Value, az.Wildcard = strings.TrimPrefix(id.Value, "*."), true
		}
		az.Challenges = challengesFor(az.Identifier, az.Wildcard)
		if err := st.PutAuthz(ctx, az); err != nil {
			return Order{}, err
		}
		o.Authzs = append(o.Authzs, az.ID)
	}
	if err := st.PutOrder(ctx, o); err != nil {
		return Order{}, err
	}
	if err := st.AddAccountOrder(ctx, a.ID, o.ID, s.d.Config.MaxOrderList); err != nil {
		return Order{}, err
	}
	s.d.Logger.Info("acme: order created", "mount", mount, "issuer", a.Issuer, "account", a.ID, "order", o.ID,
		"identity", a.Caller.Username, "identifiers", len(ids))
	return o, nil
}

// checkReplaces accepts RFC 9773's "replaces" for a certificate this
// account was issued through ACME and that no other live order replaces.
func (s *Service) checkReplaces(ctx context.Context, st Store, a Account, certID string) error {
	_, serial, err := ParseCertID(certID)
	if err != nil {
		return err
	}
	c, err := st.Cert(ctx, serial)
	if err != nil {
		if apierr.KindOf(err) == apierr.NotFound {
			return NewProblem(ErrMalformed, "replaces: no certificate %s was issued through this ACME server", serial)
		}
		return err
	}
	if c.Account != a.ID {
		return NewProblem(ErrUnauthorized, "replaces: certificate %s was issued to another account", serial)
	}
	if c.ReplacedBy != "" {
		if prev, err := st.Order(ctx, c.ReplacedBy); err == nil && s.view(prev).Status != StatusInvalid {
			return NewProblem(ErrAlreadyReplaced, "certificate %s is already replaced by order %s", serial, prev.ID)
		}
	}
	return nil
}

// view is an order as of now: a pending or ready order past its expiry
// is invalid.
func (s *Service) view(o Order) Order {
	if (o.Status == StatusPending || o.Status == StatusReady) && !s.now().Before(o.Expires) {
		o.Status = StatusInvalid
		o.Error = NewProblem(ErrMalformed, "the order expired before it was finalized")
	}
	return o
}

// Order is one of the account's orders.
func (s *Service) Order(ctx context.Context, mount string, a Account, id string) (Order, error) {
	st, err := s.store(ctx, mount)
	if err != nil {
		return Order{}, err
	}
	return s.ownOrder(ctx, st, a, id)
}

func (s *Service) ownOrder(ctx context.Context, st Store, a Account, id string) (Order, error) {
	o, err := st.Order(ctx, id)
	if err != nil {
		return Order{}, notFound(err, "order")
	}
	if o.Account != a.ID {
		return Order{}, NewProblem(ErrUnauthorized, "the order belongs to another account")
	}
	return s.view(o), nil
}

// notFound turns a store's NotFound into a 404 problem naming what.
func notFound(err error, what string) error {
	if apierr.KindOf(err) == apierr.NotFound {
		return NewProblem(ErrMalformed, "no such %s", what).withStatus(http.StatusNotFound)
	}
	return err
}

// Orders lists the IDs of an account's orders, oldest first.
func (s *Service) Orders(ctx context.Context, mount string, a Account) ([]string, error) {
	st, err := s.store(ctx, mount)
	if err != nil {
		return nil, err
	}
	return st.AccountOrders(ctx, a.ID)
}

// Finalize issues the order's certificate for a CSR (RFC 8555 §7.4)
// through the pki.Issuer seam, as the account's identity: the CSR's names
// must be exactly the order's identifiers, and the CA checks the
// signature, the identity's rules and limits, and the issuer's settings
// again. A CSR the issuer refuses (key type, names) is badCSR and leaves
// the order ready; a refusal by the policy makes it invalid.
func (s *Service) Finalize(ctx context.Context, mount string, a Account, id string, csrDER []byte) (Order, error) {
	st, err := s.store(ctx, mount)
	if err != nil {
		return Order{}, err
	}
	unlock := s.locks.lock("order/" + mount + "/" + id)
	defer unlock()
	o, err := s.ownOrder(ctx, st, a, id)
	if err != nil {
		return Order{}, err
	}
	if o.Status != StatusReady {
		return Order{}, NewProblem(ErrOrderNotReady, "the order is %s, not ready", o.Status)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return Order{}, NewProblem(ErrBadCSR, "%v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return Order{}, NewProblem(ErrBadCSR, "the CSR's signature does not verify: %v", err)
	}
	if err := csrMatches(csr, o.Identifiers); err != nil {
		return Order{}, err
	}
	issued, err := s.d.CA.SignCSR(ctx, a.Caller, mount, o.Issuer, csr, pki.SignOptions{Profile: pki.Server})
	if err != nil {
		switch apierr.KindOf(err) {
		case apierr.Denied:
			o.Status = StatusInvalid
			o.Error = NewProblem(ErrUnauthorized, "%s may not have these names issued: %s", a.Caller.Username, apierr.Describe(err).Message)
			if perr := st.PutOrder(ctx, o); perr != nil {
				return Order{}, perr
			}
			return Order{}, o.Error
		case apierr.Invalid:
			return Order{}, NewProblem(ErrBadCSR, "%s", apierr.Describe(err).Message)
		}
		return Order{}, err
	}
	serial := issued.Certificate.Serial
	if err := st.PutCert(ctx, Cert{Serial: serial, Account: a.ID, Order: o.ID, Issuer: o.Issuer, ChainPEM: issued.ChainPEM}); err != nil {
		return Order{}, err
	}
	if o.Replaces != "" {
		if _, old, err := ParseCertID(o.Replaces); err == nil {
			if c, err := st.Cert(ctx, old); err == nil {
				c.ReplacedBy = o.ID
				if err := st.PutCert(ctx, c); err != nil {
					return Order{}, err
				}
			}
		}
	}
	o.Status, o.Certificate = StatusValid, serial
	if err := st.PutOrder(ctx, o); err != nil {
		return Order{}, err
	}
	s.d.Logger.Info("acme: order finalized", "mount", mount, "issuer", o.Issuer, "account", a.ID, "order", o.ID, "serial", serial,
		"identity", a.Caller.Username)
	return o, nil
}

// csrMatches checks that a CSR asks for exactly the order's identifiers:
// its DNS and IP SANs, and its common name if it has one, must be those
// and all of those (RFC 8555 §7.4).
func csrMatches(csr *x509.CertificateRequest, ids []Identifier) error {
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return NewProblem(ErrBadCSR, "the CSR asks for e-mail or URI names")
	}
	want := map[Identifier]bool{}
	for _, id := range ids {
		want[id] = true
	}
	got := map[Identifier]bool{}
	for _, d := range csr.DNSNames {
		name, err := names.ParseDNS(d)
		if err != nil {
			return NewProblem(ErrBadCSR, "CSR name %q: %v", d, err)
		}
		got[Identifier{IdentDNS, name}] = true
	}
	for _, ip := range csr.IPAddresses {
		a, _ := netip.AddrFromSlice(ip)
		got[Identifier{IdentIP, a.Unmap().String()}] = true
	}
	if cn := csr.Subject.CommonName; cn != "" {
		id := Identifier{IdentDNS, strings.ToLower(strings.TrimSuffix(cn, "."))}
		if a, err := netip.ParseAddr(cn); err == nil {
			id = Identifier{IdentIP, a.Unmap().String()}
		}
		if !want[id] {
			return NewProblem(ErrBadCSR, "the CSR's common name %q is not an identifier of the order", cn)
		}
		got[id] = true
	}
	for id := range got {
		if !want[id] {
			return NewProblem(ErrBadCSR, "the CSR asks for %s %q, which the order does not have", id.Type, id.Value)
		}
	}
	for id := range want {
		if !got[id] {
			return NewProblem(ErrBadCSR, "the CSR lacks the order's %s %q", id.Type, id.Value)
		}
	}
	return nil
}

// Certificate is a certificate issued to the account, for download.
func (s *Service) Certificate(ctx context.Context, mount string, a Account, serial string) (Cert, error) {
	st, err := s.store(ctx, mount)
	if err != nil {
		return Cert{}, err
	}
	c, err := st.Cert(ctx, serial)
	if err != nil {
		return Cert{}, notFound(err, "certificate")
	}
	if c.Account != a.ID {
		return Cert{}, NewProblem(ErrUnauthorized, "the certificate was issued to another account")
	}
	return c, nil
}
