package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/password"
	"git.metacircular.net/metacircular/mcias/internal/policy"
	"git.metacircular.net/metacircular/mcias/internal/store"
	"git.metacircular.net/metacircular/mcias/internal/totp"
)

// MinPasswordLength is the shortest password accepted for an account.
const MinPasswordLength = 12

// Account is the API view of an account (no secrets).
type Account struct {
	ID          string    `json:"id"`
	Username    string    `json:"username"`
	AccountType string    `json:"account_type"`
	Status      string    `json:"status"`
	Roles       []string  `json:"roles"`
	TOTPEnabled bool      `json:"totp_enabled"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func view(a *store.Account) Account {
	roles := a.Roles
	if roles == nil {
		roles = []string{}
	}
	return Account{
		ID: a.ID, Username: a.Username, AccountType: a.Type, Status: a.Status, Roles: roles,
		TOTPEnabled: a.TOTPEnabled, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
}

// CreateAccountRequest creates an account.
type CreateAccountRequest struct {
	Username    string   `json:"username"`
	AccountType string   `json:"account_type"`
	Password    string   `json:"password"`
	Roles       []string `json:"roles"`
}

func validRoles(roles []string) error {
	for _, r := range roles {
		if r != auth.RoleAdmin && r != auth.RoleUser && r != auth.RoleGuest {
			return invalid("unknown role %q (admin, user, guest)", r)
		}
	}
	return nil
}

func validPassword(pw string) error {
	if len(pw) < MinPasswordLength {
		return invalid("password must be at least %d characters", MinPasswordLength)
	}
	if len(pw) > 1024 {
		return invalid("password must be at most 1024 bytes")
	}
	return nil
}

// CreateAccount creates a human or system account (admin only). Humans need
// a password and get the "user" role unless roles are given; system
// accounts carry no roles and normally no password.
func (s *Service) CreateAccount(ctx context.Context, caller *auth.Identity, req CreateAccountRequest) (Account, error) {
	if !caller.IsAdmin() {
		return Account{}, ErrForbidden
	}
	return s.createAccount(ctx, req, caller.Username)
}

func (s *Service) createAccount(ctx context.Context, req CreateAccountRequest, by string) (Account, error) {
	if !usernameRe.MatchString(req.Username) {
		return Account{}, invalid("username %q: use 1-64 lower-case letters, digits, '.', '_' or '-'", req.Username)
	}
	if err := validRoles(req.Roles); err != nil {
		return Account{}, err
	}
	now := s.now()
	a := &store.Account{ID: newAccountID(), Username: req.Username, Type: req.AccountType, Status: store.StatusActive,
		Roles: slices.Compact(slices.Sorted(slices.Values(req.Roles))), CreatedAt: now, UpdatedAt: now}
	switch req.AccountType {
	case auth.AccountHuman:
		if err := validPassword(req.Password); err != nil {
			return Account{}, err
		}
		if len(a.Roles) == 0 {
			a.Roles = []string{auth.RoleUser}
		}
	case auth.AccountSystem:
		if len(a.Roles) > 0 {
			return Account{}, invalid("system accounts carry no roles; each service authorizes them by its own policy")
		}
		if req.Password != "" {
			if err := validPassword(req.Password); err != nil {
				return Account{}, err
			}
		}
	default:
		return Account{}, invalid("account_type must be %q or %q", auth.AccountHuman, auth.AccountSystem)
	}
	if req.Password != "" {
		h, err := password.Hash(req.Password, s.cfg.Argon2)
		if err != nil {
			return Account{}, invalid("%v", err)
		}
		a.PasswordHash = h
	}
	if err := s.st.CreateAccount(ctx, a); err != nil {
		return Account{}, mapStore(err)
	}
	s.logger.Info("account created", "username", a.Username, "type", a.Type, "roles", a.Roles, "by", by)
	return view(a), nil
}

// GetAccount returns an account (admin, or the account itself).
func (s *Service) GetAccount(ctx context.Context, caller *auth.Identity, id string) (Account, error) {
	if !caller.IsAdmin() && caller.Subject != id {
		return Account{}, ErrForbidden
	}
	a, err := s.st.GetAccount(ctx, id)
	if err != nil {
		return Account{}, mapStore(err)
	}
	return view(a), nil
}

// FindAccount resolves an ID or a username (admin only).
func (s *Service) FindAccount(ctx context.Context, caller *auth.Identity, idOrName string) (Account, error) {
	if !caller.IsAdmin() {
		return Account{}, ErrForbidden
	}
	a, err := s.st.GetAccount(ctx, idOrName)
	if errors.Is(err, store.ErrNotFound) {
		a, err = s.st.GetAccountByUsername(ctx, idOrName)
	}
	if err != nil {
		return Account{}, mapStore(err)
	}
	return view(a), nil
}

// ListAccounts lists every account (admin only).
func (s *Service) ListAccounts(ctx context.Context, caller *auth.Identity) ([]Account, error) {
	if !caller.IsAdmin() {
		return nil, ErrForbidden
	}
	list, err := s.st.ListAccounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Account, 0, len(list))
	for _, a := range list {
		out = append(out, view(a))
	}
	return out, nil
}

// UpdateAccountRequest changes an account; nil fields stay as they are.
type UpdateAccountRequest struct {
	Status   *string   `json:"status,omitempty"`
	Roles    *[]string `json:"roles,omitempty"`
	Password *string   `json:"password,omitempty"`
}

// UpdateAccount changes status, roles or password (admin only). Disabling
// revokes the account's tokens. The last active admin cannot be disabled or
// lose the admin role.
func (s *Service) UpdateAccount(ctx context.Context, caller *auth.Identity, id string, req UpdateAccountRequest) (Account, error) {
	if !caller.IsAdmin() {
		return Account{}, ErrForbidden
	}
	var hash string
	if req.Password != nil {
		if err := validPassword(*req.Password); err != nil {
			return Account{}, err
		}
		h, err := password.Hash(*req.Password, s.cfg.Argon2)
		if err != nil {
			return Account{}, invalid("%v", err)
		}
		hash = h
	}
	if req.Roles != nil {
		if err := validRoles(*req.Roles); err != nil {
			return Account{}, err
		}
	}
	if req.Status != nil && *req.Status != store.StatusActive && *req.Status != store.StatusDisabled {
		return Account{}, invalid("status must be %q or %q", store.StatusActive, store.StatusDisabled)
	}
	admins, err := s.st.CountAdmins(ctx)
	if err != nil {
		return Account{}, err
	}
	a, err := s.st.UpdateAccount(ctx, id, func(a *store.Account) error {
		wasAdmin := a.Status == store.StatusActive && slices.Contains(a.Roles, auth.RoleAdmin)
		if req.Roles != nil {
			if a.Type == auth.AccountSystem && len(*req.Roles) > 0 {
				return invalid("system accounts carry no roles")
			}
			a.Roles = slices.Compact(slices.Sorted(slices.Values(*req.Roles)))
		}
		if req.Status != nil {
			a.Status = *req.Status
		}
		if hash != "" {
			a.PasswordHash = hash
		}
		isAdmin := a.Status == store.StatusActive && slices.Contains(a.Roles, auth.RoleAdmin)
		if wasAdmin && !isAdmin && admins <= 1 {
			return fmt.Errorf("%w: %s is the last active admin", ErrConflict, a.Username)
		}
		return nil
	})
	if err != nil {
		return Account{}, mapStore(err)
	}
	s.logger.Info("account updated", "username", a.Username, "status", a.Status, "roles", a.Roles,
		"password_changed", hash != "", "by", caller.Username)
	return view(a), nil
}

// ChangePassword lets an account change its own password, proving the
// current one.
func (s *Service) ChangePassword(ctx context.Context, caller *auth.Identity, current, next string) error {
	if err := validPassword(next); err != nil {
		return err
	}
	a, err := s.st.GetAccount(ctx, caller.Subject)
	if err != nil {
		return mapStore(err)
	}
	if a.PasswordHash == "" {
		return invalid("this account has no password")
	}
	if err := s.throttled(a.Username, func() error {
		ok, err := password.Verify(current, a.PasswordHash)
		if err != nil {
			return err
		}
		if !ok {
			return ErrBadCredentials
		}
		return nil
	}); err != nil {
		return err
	}
	h, err := password.Hash(next, s.cfg.Argon2)
	if err != nil {
		return invalid("%v", err)
	}
	_, err = s.st.UpdateAccount(ctx, a.ID, func(acc *store.Account) error { acc.PasswordHash = h; return nil })
	if err == nil {
		s.logger.Info("password changed", "username", a.Username)
	}
	return err
}

// DeleteAccount removes an account and its tokens (admin only); the last
// active admin cannot be deleted.
func (s *Service) DeleteAccount(ctx context.Context, caller *auth.Identity, id string) error {
	if !caller.IsAdmin() {
		return ErrForbidden
	}
	a, err := s.st.GetAccount(ctx, id)
	if err != nil {
		return mapStore(err)
	}
	if a.Status == store.StatusActive && slices.Contains(a.Roles, auth.RoleAdmin) {
		n, err := s.st.CountAdmins(ctx)
		if err != nil {
			return err
		}
		if n <= 1 {
			return fmt.Errorf("%w: %s is the last active admin", ErrConflict, a.Username)
		}
	}
	if err := s.st.DeleteAccount(ctx, id); err != nil {
		return mapStore(err)
	}
	s.logger.Info("account deleted", "username", a.Username, "by", caller.Username)
	return nil
}

// Bootstrap creates the first admin and the default login policy when the
// database has no accounts. It reports whether it created anything.
func (s *Service) Bootstrap(ctx context.Context, username, pw string) (bool, error) {
	list, err := s.st.ListAccounts(ctx)
	if err != nil {
		return false, err
	}
	if len(list) > 0 {
		return false, nil
	}
	if _, err := s.createAccount(ctx, CreateAccountRequest{
		Username: username, AccountType: auth.AccountHuman, Password: pw, Roles: []string{auth.RoleAdmin},
	}, "mcias init"); err != nil {
		return false, err
	}
	rules, err := s.st.ListPolicies(ctx)
	if err != nil {
		return false, err
	}
	if len(rules) == 0 {
		if _, err := s.st.CreatePolicy(ctx, policy.Rule{
			Priority: 1000, Effect: policy.Allow, Actions: []string{policy.ActionLogin},
			Description: "default: allow every active account to log in; tighten with higher-priority rules",
		}); err != nil {
			return false, err
		}
	}
	return true, nil
}

// --- TOTP ---

// TOTPEnrollment is a pending TOTP secret to show the user once.
type TOTPEnrollment struct {
	Secret string `json:"secret"`
	URI    string `json:"uri"`
}

func selfOrAdmin(caller *auth.Identity, id string) error {
	if caller.Subject != id && !caller.IsAdmin() {
		return ErrForbidden
	}
	return nil
}

// EnrollTOTP creates a new, not yet active TOTP secret for the caller's own
// account. It becomes required only after ConfirmTOTP.
func (s *Service) EnrollTOTP(ctx context.Context, caller *auth.Identity, id string) (TOTPEnrollment, error) {
	if caller.Subject != id {
		return TOTPEnrollment{}, ErrForbidden
	}
	secret, err := totp.GenerateSecret()
	if err != nil {
		return TOTPEnrollment{}, err
	}
	a, err := s.st.UpdateAccount(ctx, id, func(a *store.Account) error {
		if a.TOTPEnabled {
			return fmt.Errorf("%w: TOTP is already enabled; disable it first", ErrConflict)
		}
		a.TOTPSecret, a.TOTPLastStep = secret, 0
		return nil
	})
	if err != nil {
		return TOTPEnrollment{}, mapStore(err)
	}
	return TOTPEnrollment{Secret: secret, URI: totp.URI(secret, s.cfg.Issuer, a.Username)}, nil
}

// RecoveryCodeCount is how many single-use recovery codes ConfirmTOTP makes.
const RecoveryCodeCount = 10

// ConfirmTOTP activates a pending secret with a valid code and returns the
// recovery codes (shown once; only their hashes are kept).
func (s *Service) ConfirmTOTP(ctx context.Context, caller *auth.Identity, id, code string) ([]string, error) {
	if caller.Subject != id {
		return nil, ErrForbidden
	}
	a, err := s.st.GetAccount(ctx, id)
	if err != nil {
		return nil, mapStore(err)
	}
	if a.TOTPEnabled {
		return nil, fmt.Errorf("%w: TOTP is already enabled", ErrConflict)
	}
	if a.TOTPSecret == "" {
		return nil, invalid("no pending TOTP enrolment; enroll first")
	}
	step, ok := totp.Validate(a.TOTPSecret, code, s.now(), a.TOTPLastStep)
	if !ok {
		return nil, invalid("the code does not match; check the device clock and try the next code")
	}
	codes, err := totp.GenerateRecoveryCodes(RecoveryCodeCount)
	if err != nil {
		return nil, err
	}
	hashes := make([]string, len(codes))
	for i, c := range codes {
		hashes[i] = totp.HashRecoveryCode(c)
	}
	if err := s.st.ReplaceRecoveryCodes(ctx, id, hashes); err != nil {
		return nil, err
	}
	if _, err := s.st.UpdateAccount(ctx, id, func(acc *store.Account) error {
		acc.TOTPEnabled, acc.TOTPLastStep = true, step
		return nil
	}); err != nil {
		return nil, mapStore(err)
	}
	s.logger.Info("totp enabled", "username", a.Username)
	return codes, nil
}

// DisableTOTP turns TOTP off: an admin for any account (device lost), or the
// account itself with a current code or a recovery code.
func (s *Service) DisableTOTP(ctx context.Context, caller *auth.Identity, id, code string) error {
	if err := selfOrAdmin(caller, id); err != nil {
		return err
	}
	a, err := s.st.GetAccount(ctx, id)
	if err != nil {
		return mapStore(err)
	}
	if !caller.IsAdmin() || caller.Subject == id {
		if a.TOTPEnabled {
			if err := s.throttled(a.Username, func() error { return s.checkSecondFactor(ctx, a, code) }); err != nil {
				return err
			}
		}
	}
	if _, err := s.st.UpdateAccount(ctx, id, func(acc *store.Account) error {
		acc.TOTPEnabled, acc.TOTPSecret, acc.TOTPLastStep = false, "", 0
		return nil
	}); err != nil {
		return mapStore(err)
	}
	if err := s.st.ReplaceRecoveryCodes(ctx, id, nil); err != nil {
		return err
	}
	s.logger.Info("totp disabled", "username", a.Username, "by", caller.Username)
	return nil
}

// checkSecondFactor accepts a TOTP code (each step once) or an unused
// recovery code (once).
func (s *Service) checkSecondFactor(ctx context.Context, a *store.Account, code string) error {
	if step, ok := totp.Validate(a.TOTPSecret, code, s.now(), a.TOTPLastStep); ok {
		won, err := s.st.AdvanceTOTPStep(ctx, a.ID, step)
		if err != nil {
			return err
		}
		if won {
			return nil
		}
		return ErrBadCredentials
	}
	if len(totp.NormalizeRecoveryCode(code)) >= 12 {
		used, err := s.st.UseRecoveryCode(ctx, a.ID, totp.HashRecoveryCode(code))
		if err != nil {
			return err
		}
		if used {
			s.logger.Warn("recovery code used", "username", a.Username)
			return nil
		}
	}
	return ErrBadCredentials
}

// --- policies ---

// ListPolicies returns the rules in evaluation order (admin only).
func (s *Service) ListPolicies(ctx context.Context, caller *auth.Identity) ([]policy.Rule, error) {
	if !caller.IsAdmin() {
		return nil, ErrForbidden
	}
	return s.st.ListPolicies(ctx)
}

// GetPolicy returns one rule (admin only).
func (s *Service) GetPolicy(ctx context.Context, caller *auth.Identity, id int64) (policy.Rule, error) {
	if !caller.IsAdmin() {
		return policy.Rule{}, ErrForbidden
	}
	r, err := s.st.GetPolicy(ctx, id)
	return r, mapStore(err)
}

func normalizeRule(r *policy.Rule) error {
	for _, l := range []*[]string{&r.Roles, &r.AccountTypes, &r.Actions, &r.ServiceNames, &r.RequiredTags} {
		if *l == nil {
			*l = []string{}
		}
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// CreatePolicy adds a rule (admin only).
func (s *Service) CreatePolicy(ctx context.Context, caller *auth.Identity, r policy.Rule) (policy.Rule, error) {
	if !caller.IsAdmin() {
		return policy.Rule{}, ErrForbidden
	}
	if err := normalizeRule(&r); err != nil {
		return policy.Rule{}, err
	}
	out, err := s.st.CreatePolicy(ctx, r)
	if err == nil {
		s.logger.Info("policy created", "id", out.ID, "effect", out.Effect, "priority", out.Priority, "by", caller.Username)
	}
	return out, err
}

// UpdatePolicy replaces a rule (admin only).
func (s *Service) UpdatePolicy(ctx context.Context, caller *auth.Identity, r policy.Rule) (policy.Rule, error) {
	if !caller.IsAdmin() {
		return policy.Rule{}, ErrForbidden
	}
	if err := normalizeRule(&r); err != nil {
		return policy.Rule{}, err
	}
	out, err := s.st.UpdatePolicy(ctx, r)
	if err != nil {
		return policy.Rule{}, mapStore(err)
	}
	s.logger.Info("policy updated", "id", out.ID, "by", caller.Username)
	return out, nil
}

// DeletePolicy removes a rule (admin only).
func (s *Service) DeletePolicy(ctx context.Context, caller *auth.Identity, id int64) error {
	if !caller.IsAdmin() {
		return ErrForbidden
	}
	if err := s.st.DeletePolicy(ctx, id); err != nil {
		return mapStore(err)
	}
	s.logger.Info("policy deleted", "id", id, "by", caller.Username)
	return nil
}

// RecoverAdmin is the break-glass path for an operator with access to the
// database file (the "mcias recover-admin" command, never an API): it makes
// username an active human admin with the given password, creating the
// account if needed, and clears its TOTP. If login policy would deny an
// admin logging in with mciasctl, it adds an allow rule for that at
// priority -1 — below anything the API accepts, so it is evaluated first —
// and reports it, so the operator can log in and repair the policy.
func (s *Service) RecoverAdmin(ctx context.Context, username, pw string) (addedRule bool, err error) {
	if err := validPassword(pw); err != nil {
		return false, err
	}
	a, err := s.st.GetAccountByUsername(ctx, username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, err := s.createAccount(ctx, CreateAccountRequest{
			Username: username, AccountType: auth.AccountHuman, Password: pw, Roles: []string{auth.RoleAdmin},
		}, "mcias recover-admin"); err != nil {
			return false, err
		}
	case err != nil:
		return false, err
	case a.Type != auth.AccountHuman:
		return false, invalid("%s is a system account", username)
	default:
		h, err := password.Hash(pw, s.cfg.Argon2)
		if err != nil {
			return false, invalid("%v", err)
		}
		if _, err := s.st.UpdateAccount(ctx, a.ID, func(acc *store.Account) error {
			acc.PasswordHash, acc.Status = h, store.StatusActive
			acc.TOTPEnabled, acc.TOTPSecret, acc.TOTPLastStep = false, "", 0
			if !slices.Contains(acc.Roles, auth.RoleAdmin) {
				acc.Roles = append(acc.Roles, auth.RoleAdmin)
			}
			return nil
		}); err != nil {
			return false, err
		}
	}
	s.logger.Warn("admin recovered offline", "username", username)
	rules, err := s.st.ListPolicies(ctx)
	if err != nil {
		return false, err
	}
	req := policy.Request{Roles: []string{auth.RoleAdmin}, AccountType: auth.AccountHuman, Action: policy.ActionLogin, ServiceName: "mciasctl"}
	if policy.Evaluate(rules, req).Allow {
		return false, nil
	}
	if _, err := s.st.CreatePolicy(ctx, policy.Rule{
		Priority: -1, Effect: policy.Allow, Roles: []string{auth.RoleAdmin}, Actions: []string{policy.ActionLogin},
		ServiceNames: []string{"mciasctl"}, Description: "break-glass rule added by mcias recover-admin; delete it once the policy is repaired",
	}); err != nil {
		return false, err
	}
	return true, nil
}

// EnsureSystemAccount is the offline provisioning path for an operator (or
// the local launcher) with access to the database file (the "mcias
// system-account" command, never an API): it creates the system account
// username if it does not exist and issues it a fresh system token with
// the given lifetime (0: the configured system_ttl). An existing account
// must be an active system account; its older tokens stay valid. created
// reports whether the account was new.
func (s *Service) EnsureSystemAccount(ctx context.Context, username string, ttl time.Duration) (created bool, iss Issued, err error) {
	if ttl <= 0 {
		ttl = s.cfg.SystemTTL
	}
	if ttl > s.cfg.SystemTTL {
		return false, Issued{}, invalid("ttl %s exceeds the maximum %s", ttl, s.cfg.SystemTTL)
	}
	a, err := s.st.GetAccountByUsername(ctx, username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if _, err := s.createAccount(ctx, CreateAccountRequest{Username: username, AccountType: auth.AccountSystem}, "mcias system-account"); err != nil {
			return false, Issued{}, err
		}
		if a, err = s.st.GetAccountByUsername(ctx, username); err != nil {
			return false, Issued{}, err
		}
		created = true
	case err != nil:
		return false, Issued{}, err
	case a.Type != auth.AccountSystem:
		return false, Issued{}, invalid("%s is a %s account, not a system account", username, a.Type)
	case a.Status != store.StatusActive:
		return false, Issued{}, invalid("system account %s is disabled", username)
	}
	iss, err = s.issue(ctx, a, store.KindSystem, ttl)
	if err != nil {
		return false, Issued{}, err
	}
	s.logger.Info("system token issued", "account", a.Username, "by", "mcias system-account", "expires_at", iss.ExpiresAt)
	return created, iss, nil
}
