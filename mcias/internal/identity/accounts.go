package identity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/store"
)

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
		h, err := s.hashPassword(ctx, req.Password)
		if err != nil {
			return Account{}, err
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

// ResolveAccount turns an account reference from a request (an account ID
// or a username, as in /v1/accounts/{account}) into the account's ID.
// Anyone may name themselves; naming another account takes an admin, so a
// non-admin learns nothing about which other accounts exist.
func (s *Service) ResolveAccount(ctx context.Context, caller *auth.Identity, ref string) (string, error) {
	if ref == "" {
		return "", invalid("account is required (an account ID or username)")
	}
	if ref == caller.Subject || ref == caller.Username {
		return caller.Subject, nil
	}
	a, err := s.FindAccount(ctx, caller, ref)
	if err != nil {
		return "", err
	}
	return a.ID, nil
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
// revokes the account's tokens; so does a password reset, which is a
// credential change (an admin resetting their own password this way signs
// themselves out too). The last active admin cannot be disabled or lose
// the admin role.
func (s *Service) UpdateAccount(ctx context.Context, caller *auth.Identity, id string, req UpdateAccountRequest) (Account, error) {
	if !caller.IsAdmin() {
		return Account{}, ErrForbidden
	}
	var hash string
	if req.Password != nil {
		if err := validPassword(*req.Password); err != nil {
			return Account{}, err
		}
		h, err := s.hashPassword(ctx, *req.Password)
		if err != nil {
			return Account{}, err
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
			s.credentialsChanged(a)
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
	s.logger.Info("account updated", "account", a.ID, "username", a.Username, "status", a.Status, "roles", a.Roles,
		"password_reset", hash != "", "tokens_revoked", hash != "" || a.Status == store.StatusDisabled, "by", caller.Username)
	return view(a), nil
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
