package server

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/logging"
	"git.metacircular.net/metacircular/metacrypt/internal/barrier"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/ca"
	"git.metacircular.net/metacircular/metacrypt/internal/mount"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

// BootstrapRequest is the platform CA a fresh Metacrypt is given without
// an admin login (PLATFORM.md §12: init, unseal, import the seed root,
// issuers): the local launcher and first-time provisioning use it.
type BootstrapRequest struct {
	// Password is the unseal password; set as it when the barrier is not
	// initialized yet, checked against it otherwise.
	Password []byte
	// Mount is the CA mount (default "pki").
	Mount string
	// RootCertFile and RootKeyFile are the seed root to import (PEM).
	RootCertFile, RootKeyFile string
	// Domain is the platform domain D: the agent may issue names under
	// svc.D only.
	Domain string
	// Agent is the system account that deploys services (default
	// "mcp-agent").
	Agent string
}

// bootstrapCaller stands for the operator running bootstrap on the
// database: an admin, as running it needs the database file and the
// unseal password.
var bootstrapCaller = engine.Caller{Username: "bootstrap", Roles: []string{engine.RoleAdmin}}

// Bootstrap makes sure the barrier is initialized and, unsealed with the
// password for the duration, that the CA mount exists with the seed root
// imported, the infra, services and clients issuers, and the agent's rule
// and issuance limit (names under svc.D). What exists is left as it is, so
// it can run at every start; it works directly on the database, so run it
// while the server is stopped. It reports what it did on out.
func Bootstrap(ctx context.Context, cfg *Config, r BootstrapRequest, out io.Writer) error {
	if r.Mount == "" {
		r.Mount = "pki"
	}
	if r.Agent == "" {
		r.Agent = "mcp-agent"
	}
	if r.Domain == "" {
		return apierr.InvalidField("domain", "the platform domain is required")
	}
	if len(r.Password) == 0 {
		return apierr.InvalidField("password", "an unseal password is required")
	}
	certPEM, err := os.ReadFile(r.RootCertFile) //nolint:gosec // operator-named file
	if err != nil {
		return fmt.Errorf("root certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(r.RootKeyFile) //nolint:gosec // operator-named file
	if err != nil {
		return fmt.Errorf("root key: %w", err)
	}
	st, err := store.Open(ctx, cfg.Database.Path, logging.Discard())
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	b := barrier.New(st, barrier.Options{Params: cfg.Seal.Params()})
	defer b.Seal()
	status, err := b.Status(ctx)
	if err != nil {
		return err
	}
	if !status.Initialized {
		if err := b.Init(ctx, r.Password); err != nil {
			return err
		}
		fmt.Fprintf(out, "metacrypt: initialized %s\n", cfg.Database.Path)
	}
	if err := b.Unseal(ctx, r.Password); err != nil {
		return fmt.Errorf("unseal: %w", err)
	}
	pol := policy.New(b.View(barrier.SysOwner))
	reg := engine.NewRegistry()
	mounts := mount.New(st, b, reg)
	caSvc := ca.New(ca.Deps{Mounts: mounts, Store: st, Authz: pol, Sealed: b.Sealed, Logger: logging.Discard(),
		Config: ca.Config{ExternalURL: cfg.PKI.ExternalURL, CRLLifetime: cfg.PKI.CRLLifetime.Duration, OCSPLifetime: cfg.PKI.OCSPLifetime.Duration}})
	reg.Register(caSvc)

	existing, err := mounts.List(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(existing, func(m store.MountRow) bool { return m.Name == r.Mount }) {
		if _, err := mounts.Create(ctx, r.Mount, ca.Type); err != nil {
			return fmt.Errorf("create mount %s: %w", r.Mount, err)
		}
		fmt.Fprintf(out, "created CA mount %s\n", r.Mount)
	}
	issuers, err := caSvc.ListIssuers(ctx, bootstrapCaller, r.Mount)
	if err != nil && !apierr.Is(err, apierr.Precondition) { // Precondition: no root yet
		return err
	}
	have := map[string]bool{}
	for _, i := range issuers {
		have[i.Name] = true
	}
	if len(issuers) == 0 {
		if _, err := caSvc.ImportRoot(ctx, bootstrapCaller, r.Mount, ca.ImportRequest{CertificatePEM: string(certPEM), PrivateKeyPEM: string(keyPEM)}); err != nil {
			return fmt.Errorf("import root %s: %w", r.RootCertFile, err)
		}
		fmt.Fprintf(out, "imported root %s\n", r.RootCertFile)
	}
	for _, iss := range []ca.IssuerRequest{
		{Name: "infra", Profiles: []string{"server", "both"}},
		{Name: "services", MaxTTL: "2160h", Profiles: []string{"server", "client", "both"}, PermittedDNSDomains: []string{"svc." + r.Domain}},
		{Name: "clients", Profiles: []string{"client"}},
	} {
		if have[iss.Name] {
			continue
		}
		if _, err := caSvc.CreateIssuer(ctx, bootstrapCaller, r.Mount, iss); err != nil {
			return fmt.Errorf("create issuer %s: %w", iss.Name, err)
		}
		fmt.Fprintf(out, "created issuer %s\n", iss.Name)
	}
	return bootstrapAgent(ctx, pol, r, out)
}

// bootstrapAgent gives the agent its rule and issuance limit unless it has
// some already (an operator's own are never overwritten).
func bootstrapAgent(ctx context.Context, pol *policy.Engine, r BootstrapRequest, out io.Writer) error {
	names := func(s policy.Subject) bool { return slices.Contains(s.Accounts, r.Agent) }
	rules, err := pol.Rules(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(rules, func(x policy.Rule) bool { return names(x.Subject) }) {
		if _, err := pol.CreateRule(ctx, policy.Rule{
			Priority: 100, Effect: policy.Allow, Subject: policy.Subject{Accounts: []string{r.Agent}},
			Mounts: []string{r.Mount}, Operations: []string{"issue", "sign", "renew", "revoke", "read"},
			Resources:   []string{"issuer/services", "certs"},
			Description: "bootstrap: the MCP agent issues service certificates",
		}); err != nil {
			return fmt.Errorf("agent rule: %w", err)
		}
		fmt.Fprintf(out, "allowed %s to issue from %s/services\n", r.Agent, r.Mount)
	}
	limits, err := pol.Limits(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(limits, func(x policy.Limit) bool { return names(x.Subject) }) {
		if _, err := pol.CreateLimit(ctx, policy.Limit{
			Priority: 100, Effect: policy.Allow, Subject: policy.Subject{Accounts: []string{r.Agent}},
			Mounts: []string{r.Mount}, Names: []string{"*.svc." + r.Domain},
			Description: "bootstrap: the MCP agent issues names under svc." + r.Domain + " only",
		}); err != nil {
			return fmt.Errorf("agent limit: %w", err)
		}
		fmt.Fprintf(out, "limited %s to *.svc.%s\n", r.Agent, r.Domain)
	}
	return nil
}
