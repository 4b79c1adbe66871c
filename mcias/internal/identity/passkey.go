package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/policy"
	"git.metacircular.net/metacircular/mcias/internal/store"
	"git.metacircular.net/metacircular/mcias/internal/throttle"
)

// WebServiceName is the service_name of logins made through MCIAS's own web
// UI (password or passkey): login policy sees them as logins to "mcias".
const WebServiceName = "mcias"

// userHandleLen is the size of the random WebAuthn user handle (the
// specification's maximum, and what it recommends).
const userHandleLen = 64

// maxPasskeyName bounds a passkey's display name.
const maxPasskeyName = 64

// DefaultCeremonyTTL is how long a begun passkey ceremony can be finished.
const DefaultCeremonyTTL = 3 * time.Minute

// maxCeremonies bounds the pending ceremonies held in memory: beginning a
// login needs no account, so the table must not grow without limit.
const maxCeremonies = 10_000

// maxCeremoniesPerClient bounds the pending ceremonies of one client
// address (logins) or account (registrations), so that one client cannot
// fill the table and lock everyone else out of passkeys.
const maxCeremoniesPerClient = 16

// PasskeyConfig describes the WebAuthn relying party (the [webauthn] config
// section; field errors name its keys).
type PasskeyConfig struct {
	// RPID is the relying party ID: the host name (or a registrable suffix
	// of it) the browser shows passkeys for, e.g. "mcias.svc.example.net".
	RPID string
	// RPDisplayName is shown by the browser while creating a passkey.
	RPDisplayName string
	// RPOrigins are the web origins allowed to run ceremonies, in the
	// exact form browsers send them: scheme://host[:port], lower case, no
	// default port, no trailing slash.
	RPOrigins []string
	// CeremonyTTL bounds the time between begin and finish (default
	// DefaultCeremonyTTL).
	CeremonyTTL time.Duration
}

var rpIDRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// Validate checks the relying party ID and that every origin is an exact,
// canonical origin on that ID.
func (c PasskeyConfig) Validate() error {
	if !rpIDRe.MatchString(c.RPID) || net.ParseIP(c.RPID) != nil {
		return fmt.Errorf("rp_id %q: expected a lower-case host name such as \"mcias.svc.example.net\" (no scheme, port or IP address)", c.RPID)
	}
	if len(c.RPOrigins) == 0 {
		return fmt.Errorf("rp_origins: at least one origin is required, such as \"https://%s\"", c.RPID)
	}
	for i, o := range c.RPOrigins {
		if err := checkOrigin(o, c.RPID); err != nil {
			return fmt.Errorf("rp_origins[%d] %q: %w", i, o, err)
		}
	}
	if c.CeremonyTTL < 0 {
		return errors.New("ceremony ttl must not be negative")
	}
	return nil
}

// checkOrigin accepts exactly the serialization a browser puts in
// clientDataJSON, so that comparing strings compares origins.
func checkOrigin(o, rpID string) error {
	u, err := url.Parse(o)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return errors.New("the scheme must be https")
	}
	if u.Opaque != "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return errors.New("an origin is scheme://host[:port] with nothing after it (no path, not even \"/\")")
	}
	host, port := u.Hostname(), u.Port()
	if o != strings.ToLower(o) {
		return errors.New("write the origin in lower case, as browsers send it")
	}
	if o != u.Scheme+"://"+u.Host {
		return errors.New("an origin is scheme://host[:port] with nothing after it")
	}
	if u.Scheme == "http" && host != "localhost" {
		return errors.New("http is allowed only for localhost (a secure context); use https")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return errors.New("the port must be 1-65535")
		}
		if (u.Scheme == "https" && n == 443) || (u.Scheme == "http" && n == 80) || strconv.Itoa(n) != port {
			return errors.New("leave out the default port, as browsers do")
		}
	}
	if host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return fmt.Errorf("the host must be rp_id %q or a subdomain of it", rpID)
	}
	return nil
}

// Passkeys runs the WebAuthn registration and login ceremonies. The
// ceremonies need the browser's WebAuthn API and are bound to the web
// origin, so they are served to browsers only (REST /v1/webauthn/...), never
// over gRPC. Managing stored passkeys is on Service (ListPasskeys,
// RenamePasskey, DeletePasskey).
type Passkeys struct {
	svc        *Service
	wa         *webauthn.WebAuthn
	origins    []string
	ttl        time.Duration
	ceremonies ceremonies
}

// NewPasskeys configures the relying party. Registration requires a
// discoverable (resident) credential so logins need no username; user
// verification is preferred, not required, so security keys without a PIN
// still work; attestation is not requested (no authenticator allow-list is
// kept, and "none" reveals nothing about the user's device).
func NewPasskeys(svc *Service, cfg PasskeyConfig) (*Passkeys, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	if cfg.RPDisplayName == "" {
		cfg.RPDisplayName = "MCIAS"
	}
	if cfg.CeremonyTTL == 0 {
		cfg.CeremonyTTL = DefaultCeremonyTTL
	}
	timeout := webauthn.TimeoutConfig{Enforce: true, Timeout: cfg.CeremonyTTL, TimeoutUVD: cfg.CeremonyTTL}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         cfg.RPDisplayName,
		RPOrigins:             slices.Clone(cfg.RPOrigins),
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification:   protocol.VerificationPreferred,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	return &Passkeys{
		svc: svc, wa: wa, origins: slices.Clone(cfg.RPOrigins), ttl: cfg.CeremonyTTL,
		ceremonies: ceremonies{m: map[string]ceremony{}, perClient: map[string]int{}},
	}, nil
}

// --- ceremonies in flight ---

type ceremonyKind int

const (
	ceremonyRegister ceremonyKind = iota + 1
	ceremonyLogin
)

// ceremony is the server half of a begun ceremony: the challenge and, for a
// registration, whose it is and the user handle offered to the device.
type ceremony struct {
	kind      ceremonyKind
	client    string // who began it: "ip:<address>" or "acct:<id>"
	accountID string
	data      webauthn.SessionData
	expires   time.Time
}

// ceremonies holds pending ceremonies in memory under random IDs (the
// transport keeps the ID in a cookie). Each is taken out exactly once.
type ceremonies struct {
	mu        sync.Mutex
	m         map[string]ceremony
	perClient map[string]int
}

func (c *ceremonies) put(now time.Time, cer ceremony) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("ceremony id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCeremonies || c.perClient[cer.client] >= maxCeremoniesPerClient {
		for k, v := range c.m {
			if !now.Before(v.expires) {
				c.remove(k, v)
			}
		}
		if len(c.m) >= maxCeremonies || c.perClient[cer.client] >= maxCeremoniesPerClient {
			return "", errThrottled
		}
	}
	c.m[id] = cer
	c.perClient[cer.client]++
	return id, nil
}

// remove drops a ceremony; c.mu is held.
func (c *ceremonies) remove(id string, cer ceremony) {
	delete(c.m, id)
	if c.perClient[cer.client]--; c.perClient[cer.client] <= 0 {
		delete(c.perClient, cer.client)
	}
}

// take removes and returns the ceremony id if it is of kind and unexpired.
func (c *ceremonies) take(id string, kind ceremonyKind, now time.Time) (ceremony, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cer, ok := c.m[id]
	if !ok {
		return ceremony{}, false
	}
	c.remove(id, cer)
	if cer.kind != kind || !now.Before(cer.expires) {
		return ceremony{}, false
	}
	return cer, true
}

// --- the WebAuthn view of an account ---

// passkeyUser adapts an account to webauthn.User.
type passkeyUser struct {
	account *store.Account
	handle  []byte
	creds   []webauthn.Credential
}

func (u *passkeyUser) WebAuthnID() []byte                         { return u.handle }
func (u *passkeyUser) WebAuthnName() string                       { return u.account.Username }
func (u *passkeyUser) WebAuthnDisplayName() string                { return u.account.Username }
func (u *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func credentialOf(p *store.Passkey) webauthn.Credential {
	var f protocol.AuthenticatorFlags
	for _, b := range []struct {
		set  bool
		flag protocol.AuthenticatorFlags
	}{
		{p.UserPresent, protocol.FlagUserPresent}, {p.UserVerified, protocol.FlagUserVerified},
		{p.BackupEligible, protocol.FlagBackupEligible}, {p.BackupState, protocol.FlagBackupState},
	} {
		if b.set {
			f |= b.flag
		}
	}
	transports := make([]protocol.AuthenticatorTransport, 0, len(p.Transports))
	for _, t := range p.Transports {
		transports = append(transports, protocol.AuthenticatorTransport(t))
	}
	return webauthn.Credential{
		ID: p.CredentialID, PublicKey: p.PublicKey, AttestationType: p.AttestationType,
		AttestationFormat: p.AttestationFormat, Transport: transports, Flags: webauthn.NewCredentialFlags(f),
		Authenticator: webauthn.Authenticator{
			AAGUID: p.AAGUID, SignCount: p.SignCount, Attachment: protocol.AuthenticatorAttachment(p.Attachment),
		},
	}
}

func (p *Passkeys) user(ctx context.Context, a *store.Account, handle []byte) (*passkeyUser, error) {
	stored, err := p.svc.st.ListPasskeys(ctx, a.ID)
	if err != nil {
		return nil, err
	}
	u := &passkeyUser{account: a, handle: handle}
	for _, s := range stored {
		u.creds = append(u.creds, credentialOf(s))
	}
	return u, nil
}

// checkClientOrigin requires the origin the browser reported to be one of
// the configured origins, byte for byte: scheme, host and port.
func (p *Passkeys) checkClientOrigin(origin string) error {
	if !slices.Contains(p.origins, origin) {
		return fmt.Errorf("origin %q is not one of the configured rp_origins", origin)
	}
	return nil
}

// --- registration ---

// BeginRegistration starts adding a passkey to the caller's own (human,
// active) account. It returns the ceremony ID to present at finish and the
// options for navigator.credentials.create.
func (p *Passkeys) BeginRegistration(ctx context.Context, caller *auth.Identity) (string, *protocol.CredentialCreation, error) {
	a, err := p.svc.st.GetAccount(ctx, caller.Subject)
	if err != nil {
		return "", nil, mapStore(err)
	}
	if a.Type != auth.AccountHuman || a.Status != store.StatusActive {
		return "", nil, invalid("only active human accounts can have passkeys")
	}
	handle, err := p.svc.st.UserHandle(ctx, a.ID)
	if errors.Is(err, store.ErrNotFound) {
		// A new handle is only offered here; it is stored when the first
		// registration finishes.
		handle = make([]byte, userHandleLen)
		if _, err := rand.Read(handle); err != nil {
			return "", nil, fmt.Errorf("user handle: %w", err)
		}
	} else if err != nil {
		return "", nil, err
	}
	u, err := p.user(ctx, a, handle)
	if err != nil {
		return "", nil, err
	}
	exclude := make([]protocol.CredentialDescriptor, 0, len(u.creds))
	for _, c := range u.creds {
		exclude = append(exclude, c.Descriptor())
	}
	opts, data, err := p.wa.BeginRegistration(u, webauthn.WithExclusions(exclude))
	if err != nil {
		return "", nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	id, err := p.ceremonies.put(p.svc.now(), ceremony{
		kind: ceremonyRegister, client: "acct:" + a.ID, accountID: a.ID, data: *data, expires: p.svc.now().Add(p.ttl),
	})
	if err != nil {
		return "", nil, err
	}
	return id, opts, nil
}

// FinishRegistration verifies the browser's answer to BeginRegistration
// (the JSON of the PublicKeyCredential) and stores the passkey under name
// (a default name when empty).
func (p *Passkeys) FinishRegistration(ctx context.Context, caller *auth.Identity, ceremonyID, name string, response []byte) (PasskeyInfo, error) {
	cer, ok := p.ceremonies.take(ceremonyID, ceremonyRegister, p.svc.now())
	if !ok || cer.accountID != caller.Subject {
		return PasskeyInfo{}, invalid("no passkey registration in progress (it may have expired); start again")
	}
	if strings.TrimSpace(name) == "" {
		name = "Passkey added " + p.svc.now().Format("2006-01-02")
	}
	name, err := passkeyName(name)
	if err != nil {
		return PasskeyInfo{}, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return PasskeyInfo{}, invalid("passkey registration: %s", protocolDetail(err))
	}
	if err := p.checkClientOrigin(parsed.Response.CollectedClientData.Origin); err != nil {
		return PasskeyInfo{}, invalid("passkey registration: %v", err)
	}
	a, err := p.svc.st.GetAccount(ctx, cer.accountID)
	if err != nil {
		return PasskeyInfo{}, mapStore(err)
	}
	if a.Status != store.StatusActive {
		return PasskeyInfo{}, ErrForbidden
	}
	u, err := p.user(ctx, a, cer.data.UserID)
	if err != nil {
		return PasskeyInfo{}, err
	}
	cred, err := p.wa.CreateCredential(u, cer.data, parsed)
	if err != nil {
		return PasskeyInfo{}, invalid("passkey registration: %s", protocolDetail(err))
	}
	stored, err := p.svc.st.InitUserHandle(ctx, a.ID, cer.data.UserID)
	if err != nil {
		return PasskeyInfo{}, err
	}
	if !bytes.Equal(stored, cer.data.UserID) {
		// Another registration stored the account's first handle while this
		// one was in flight; this credential carries a handle that leads
		// nowhere.
		return PasskeyInfo{}, fmt.Errorf("%w: another passkey registration finished first; start again", ErrConflict)
	}
	transports := make([]string, 0, len(cred.Transport))
	for _, t := range cred.Transport {
		transports = append(transports, string(t))
	}
	pk := &store.Passkey{
		CredentialID: cred.ID, AccountID: a.ID, Name: name, PublicKey: cred.PublicKey,
		AttestationType: cred.AttestationType, AttestationFormat: cred.AttestationFormat,
		AAGUID: cred.Authenticator.AAGUID, SignCount: cred.Authenticator.SignCount,
		UserPresent: cred.Flags.UserPresent, UserVerified: cred.Flags.UserVerified,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		Transports: transports, Attachment: string(cred.Authenticator.Attachment), CreatedAt: p.svc.now(),
	}
	if err := p.svc.st.AddPasskey(ctx, pk); err != nil {
		return PasskeyInfo{}, mapStore(err)
	}
	p.svc.logger.Info("passkey registered", "username", a.Username, "name", name,
		"backup_eligible", pk.BackupEligible, "backup_state", pk.BackupState)
	return passkeyInfo(pk), nil
}

// --- login ---

// BeginLogin starts a usernameless (discoverable credential) login for the
// client at remoteIP. It returns the ceremony ID and the options for
// navigator.credentials.get.
func (p *Passkeys) BeginLogin(_ context.Context, remoteIP string) (string, *protocol.CredentialAssertion, error) {
	opts, data, err := p.wa.BeginDiscoverableLogin()
	if err != nil {
		return "", nil, fmt.Errorf("begin passkey login: %w", err)
	}
	id, err := p.ceremonies.put(p.svc.now(), ceremony{
		kind: ceremonyLogin, client: ipKey(remoteIP), data: *data, expires: p.svc.now().Add(p.ttl),
	})
	if err != nil {
		return "", nil, err
	}
	return id, opts, nil
}

// errPasskeyThrottled marks a lookup refused by the account throttle, so
// the login answers 429 instead of 401.
var errPasskeyThrottled = errors.New("account throttled")

// FinishLogin verifies the browser's answer to BeginLogin and issues a
// login token. It is throttled like a password login: a failure counts
// against the client address and, once the credential names an account,
// against that account. A sign counter that did not move forward (a cloned
// authenticator, or a replay) fails the login; a disabled account fails
// like any bad credential; login policy applies (service "mcias").
func (p *Passkeys) FinishLogin(ctx context.Context, ceremonyID string, response []byte, remoteIP string) (Issued, error) {
	s := p.svc
	cer, ok := p.ceremonies.take(ceremonyID, ceremonyLogin, s.now())
	if !ok {
		return Issued{}, invalid("no passkey login in progress (it may have expired); try again")
	}
	ipAttempt, ok := s.ip.Begin(ipKey(remoteIP))
	if !ok {
		return Issued{}, errThrottled
	}
	outcome := throttle.Failed
	var acctAttempt *throttle.Attempt
	defer func() {
		ipAttempt.Done(outcome)
		if acctAttempt != nil {
			acctAttempt.Done(outcome)
		}
	}()
	var a *store.Account
	fail := func(reason string) (Issued, error) {
		if a == nil {
			s.logger.Info("login failed", "method", "passkey", "account", "unknown", "reason", reason, "remote", remoteIP)
		} else {
			s.logger.Info("login failed", "method", "passkey", "account", a.ID, "username", a.Username, "reason", reason, "remote", remoteIP)
		}
		return Issued{}, ErrBadCredentials
	}

	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return fail(protocolDetail(err))
	}
	if err := p.checkClientOrigin(parsed.Response.CollectedClientData.Origin); err != nil {
		return fail(err.Error())
	}
	lookup := func(_, userHandle []byte) (webauthn.User, error) {
		acc, err := s.st.AccountByUserHandle(ctx, userHandle)
		if err != nil {
			return nil, err
		}
		if acc.Status != store.StatusActive || acc.Type != auth.AccountHuman {
			return nil, fmt.Errorf("account %s is not an active human account", acc.Username)
		}
		at, ok := s.acct.Begin("acct:" + acc.Username)
		if !ok {
			return nil, errPasskeyThrottled
		}
		acctAttempt, a = at, acc
		return p.user(ctx, acc, userHandle)
	}
	_, cred, err := p.wa.ValidatePasskeyLogin(lookup, cer.data, parsed)
	if errors.Is(err, errPasskeyThrottled) {
		outcome = throttle.Withdrawn // refused by the account limit: nothing was checked
		return Issued{}, errThrottled
	}
	if err != nil {
		return fail(protocolDetail(err))
	}
	if cred.Authenticator.CloneWarning {
		s.logger.Warn("passkey sign counter did not increase: possible cloned authenticator; login refused",
			"account", a.ID, "username", a.Username, "credential", base64.RawURLEncoding.EncodeToString(cred.ID))
		return fail("clone warning")
	}
	won, err := s.st.RecordPasskeyUse(ctx, store.PasskeyUse{
		CredentialID: cred.ID, SignCount: cred.Authenticator.SignCount,
		UserPresent: cred.Flags.UserPresent, UserVerified: cred.Flags.UserVerified,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState, UsedAt: s.now(),
	})
	if err != nil {
		return Issued{}, err
	}
	if !won {
		// A concurrent login with the same counter got there first.
		return fail("sign counter already used")
	}
	// The credential is proven: a policy denial is not a guess, nor is it
	// the owner getting in.
	if err := s.Authorize(ctx, a.ID, policy.ActionLogin, WebServiceName, nil); err != nil {
		outcome = throttle.Withdrawn
		return Issued{}, err
	}
	outcome = throttle.Succeeded
	iss, err := s.issue(ctx, a, store.KindLogin, s.cfg.HumanTTL)
	if err != nil {
		return Issued{}, err
	}
	s.logger.Info("login", "method", "passkey", "account", a.ID, "username", a.Username, "service_name", WebServiceName, "remote", remoteIP)
	return iss, nil
}

// protocolDetail is the useful part of a go-webauthn error (its details
// name the failed check; none of it is secret).
func protocolDetail(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		if pe.DevInfo != "" {
			return pe.Details + ": " + pe.DevInfo
		}
		return pe.Details
	}
	return err.Error()
}

// --- managing stored passkeys ---

// PasskeyInfo describes a registered passkey (no key material).
type PasskeyInfo struct {
	// ID is the credential ID, base64url without padding.
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	// BackupEligible: the credential can be synced to other devices;
	// BackupState: it currently is.
	BackupEligible  bool     `json:"backup_eligible"`
	BackupState     bool     `json:"backup_state"`
	Transports      []string `json:"transports"`
	AAGUID          string   `json:"aaguid"`
	AttestationType string   `json:"attestation_type"`
}

func passkeyInfo(p *store.Passkey) PasskeyInfo {
	aaguid := ""
	if id, err := uuid.FromBytes(p.AAGUID); err == nil {
		aaguid = id.String()
	}
	transports := p.Transports
	if transports == nil {
		transports = []string{}
	}
	return PasskeyInfo{
		ID: base64.RawURLEncoding.EncodeToString(p.CredentialID), Name: p.Name, CreatedAt: p.CreatedAt,
		LastUsedAt: p.LastUsedAt, BackupEligible: p.BackupEligible, BackupState: p.BackupState,
		Transports: transports, AAGUID: aaguid, AttestationType: p.AttestationType,
	}
}

func passkeyName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > maxPasskeyName || !utf8.ValidString(name) ||
		strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", invalid("a passkey name is 1-%d bytes of printable text", maxPasskeyName)
	}
	return name, nil
}

func credentialID(id string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) == 0 || len(raw) > 1023 {
		return nil, invalid("credential %q: expected a credential ID in base64url without padding", id)
	}
	return raw, nil
}

// ListPasskeys lists an account's passkeys (admin, or the account itself).
func (s *Service) ListPasskeys(ctx context.Context, caller *auth.Identity, accountID string) ([]PasskeyInfo, error) {
	if err := selfOrAdmin(caller, accountID); err != nil {
		return nil, err
	}
	if _, err := s.st.GetAccount(ctx, accountID); err != nil {
		return nil, mapStore(err)
	}
	list, err := s.st.ListPasskeys(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := make([]PasskeyInfo, 0, len(list))
	for _, p := range list {
		out = append(out, passkeyInfo(p))
	}
	return out, nil
}

// RenamePasskey changes a passkey's display name (admin, or the account
// itself).
func (s *Service) RenamePasskey(ctx context.Context, caller *auth.Identity, accountID, credential, name string) (PasskeyInfo, error) {
	if err := selfOrAdmin(caller, accountID); err != nil {
		return PasskeyInfo{}, err
	}
	id, err := credentialID(credential)
	if err != nil {
		return PasskeyInfo{}, err
	}
	if name, err = passkeyName(name); err != nil {
		return PasskeyInfo{}, err
	}
	if err := s.st.RenamePasskey(ctx, accountID, id, name); err != nil {
		return PasskeyInfo{}, mapStore(err)
	}
	p, err := s.st.GetPasskey(ctx, accountID, id)
	if err != nil {
		return PasskeyInfo{}, mapStore(err)
	}
	return passkeyInfo(p), nil
}

// DeletePasskey removes a passkey (admin, or the account itself); the
// device keeps its copy, which no longer logs in.
func (s *Service) DeletePasskey(ctx context.Context, caller *auth.Identity, accountID, credential string) error {
	if err := selfOrAdmin(caller, accountID); err != nil {
		return err
	}
	id, err := credentialID(credential)
	if err != nil {
		return err
	}
	if err := s.st.DeletePasskey(ctx, accountID, id); err != nil {
		return mapStore(err)
	}
	s.logger.Info("passkey deleted", "account", accountID, "by", caller.Username)
	return nil
}

// --- web UI settings ---

// csrfKeySetting names the web UI's CSRF signing key in the settings table.
const csrfKeySetting = "web.csrf_key"

// WebCSRFKey returns the web UI's CSRF signing key: 32 random bytes made on
// first use and kept in the database, so forms rendered before a restart
// still submit after it.
func (s *Service) WebCSRFKey(ctx context.Context) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("csrf key: %w", err)
	}
	return s.st.InitSetting(ctx, csrfKeySetting, key)
}
