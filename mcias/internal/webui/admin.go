package webui

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/identity"
	"git.metacircular.net/metacircular/mcias/internal/policy"
)

// allRoles are the roles offered as checkboxes.
var allRoles = []string{auth.RoleAdmin, auth.RoleUser, auth.RoleGuest}

const accountsPage = "/admin/accounts"

// adminAccounts is GET /admin/accounts.
func (u *UI) adminAccounts(w http.ResponseWriter, r *http.Request) {
	list, err := u.svc.ListAccounts(r.Context(), caller(r))
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "admin_accounts", "Accounts", struct {
		Accounts []identity.Account
		Roles    []string
	}{list, allRoles})
}

// formRoles is the checked roles, never nil (an empty list clears them).
func formRoles(r *http.Request) []string {
	if err := r.ParseForm(); err != nil {
		return []string{}
	}
	roles := r.PostForm["roles"]
	if roles == nil {
		roles = []string{}
	}
	return roles
}

// createAccount is POST /admin/accounts.
func (u *UI) createAccount(w http.ResponseWriter, r *http.Request) {
	a, err := u.svc.CreateAccount(r.Context(), caller(r), identity.CreateAccountRequest{
		Username: strings.TrimSpace(r.PostFormValue("username")), AccountType: r.PostFormValue("account_type"),
		Password: r.PostFormValue("password"), Roles: formRoles(r),
	})
	u.done(w, r, accountsPage, err, fmt.Sprintf("Account %s created.", a.Username))
}

// setStatus is POST /admin/accounts/{id}/status (enable or disable).
func (u *UI) setStatus(w http.ResponseWriter, r *http.Request) {
	status := r.PostFormValue("status")
	_, err := u.svc.UpdateAccount(r.Context(), caller(r), chi.URLParam(r, "id"), identity.UpdateAccountRequest{Status: &status})
	u.done(w, r, accountsPage, err, "Account "+status+".")
}

// setRoles is POST /admin/accounts/{id}/roles.
func (u *UI) setRoles(w http.ResponseWriter, r *http.Request) {
	roles := formRoles(r)
	a, err := u.svc.UpdateAccount(r.Context(), caller(r), chi.URLParam(r, "id"), identity.UpdateAccountRequest{Roles: &roles})
	u.done(w, r, accountsPage, err, fmt.Sprintf("Roles of %s set.", a.Username))
}

// resetPassword is POST /admin/accounts/{id}/password.
func (u *UI) resetPassword(w http.ResponseWriter, r *http.Request) {
	pw := r.PostFormValue("password")
	a, err := u.svc.UpdateAccount(r.Context(), caller(r), chi.URLParam(r, "id"), identity.UpdateAccountRequest{Password: &pw})
	u.done(w, r, accountsPage, err, fmt.Sprintf("Password of %s reset.", a.Username))
}

// adminDisableTOTP is POST /admin/accounts/{id}/totp/disable (lost device).
func (u *UI) adminDisableTOTP(w http.ResponseWriter, r *http.Request) {
	_, err := u.svc.DisableTOTP(r.Context(), caller(r), chi.URLParam(r, "id"), "")
	u.done(w, r, accountsPage, err, "TOTP turned off and the account's sessions signed out; the user can sign in with the password and enrol again.")
}

// issueToken is POST /admin/accounts/{id}/token: the token is shown once.
func (u *UI) issueToken(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	var ttl time.Duration
	if s := strings.TrimSpace(r.PostFormValue("ttl")); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			u.done(w, r, accountsPage, fmt.Errorf("%w: lifetime %q: expected a positive duration like 720h", identity.ErrInvalid, s), "")
			return
		}
		ttl = d
	}
	id := chi.URLParam(r, "id")
	a, err := u.svc.GetAccount(r.Context(), c, id)
	if err != nil {
		u.done(w, r, accountsPage, err, "")
		return
	}
	iss, err := u.svc.IssueSystemToken(r.Context(), c, id, ttl)
	if err != nil {
		u.done(w, r, accountsPage, err, "")
		return
	}
	u.render(w, r, http.StatusOK, "admin_token", "New token", struct {
		Username, Token string
		ExpiresAt       time.Time
	}{a.Username, iss.Token, iss.ExpiresAt})
}

// deleteAccount is POST /admin/accounts/{id}/delete (with the confirm box
// ticked).
func (u *UI) deleteAccount(w http.ResponseWriter, r *http.Request) {
	if r.PostFormValue("confirm") != "yes" {
		u.done(w, r, accountsPage, fmt.Errorf("%w: tick the box to confirm the deletion", identity.ErrInvalid), "")
		return
	}
	err := u.svc.DeleteAccount(r.Context(), caller(r), chi.URLParam(r, "id"))
	u.done(w, r, accountsPage, err, "Account deleted.")
}

const policiesPage = "/admin/policies"

// adminPolicies is GET /admin/policies.
func (u *UI) adminPolicies(w http.ResponseWriter, r *http.Request) {
	list, err := u.svc.ListPolicies(r.Context(), caller(r))
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "admin_policies", "Login policy", struct{ Policies []policy.Rule }{list})
}

// splitList reads a comma-separated form field.
func splitList(s string) []string {
	out := []string{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// createPolicy is POST /admin/policies.
func (u *UI) createPolicy(w http.ResponseWriter, r *http.Request) {
	prio, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("priority")))
	if err != nil {
		u.done(w, r, policiesPage, fmt.Errorf("%w: priority must be a whole number", identity.ErrInvalid), "")
		return
	}
	rule, err := u.svc.CreatePolicy(r.Context(), caller(r), policy.Rule{
		Priority: prio, Effect: r.PostFormValue("effect"), Roles: splitList(r.PostFormValue("roles")),
		AccountTypes: splitList(r.PostFormValue("account_types")), Actions: splitList(r.PostFormValue("actions")),
		ServiceNames: splitList(r.PostFormValue("service_names")), RequiredTags: splitList(r.PostFormValue("required_tags")),
		Description: strings.TrimSpace(r.PostFormValue("description")),
	})
	u.done(w, r, policiesPage, err, fmt.Sprintf("Rule %d added.", rule.ID))
}

// deletePolicy is POST /admin/policies/{id}/delete.
func (u *UI) deletePolicy(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		u.done(w, r, policiesPage, fmt.Errorf("%w: no such rule", identity.ErrInvalid), "")
		return
	}
	err = u.svc.DeletePolicy(r.Context(), caller(r), id)
	u.done(w, r, policiesPage, err, fmt.Sprintf("Rule %d deleted.", id))
}

// adminKeys is GET /admin/keys.
func (u *UI) adminKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := u.svc.Keys(r.Context(), caller(r))
	if err != nil {
		u.fail(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "admin_keys", "Signing keys", struct{ Keys []identity.KeyInfo }{keys})
}

// rotateKey is POST /admin/keys/rotate.
func (u *UI) rotateKey(w http.ResponseWriter, r *http.Request) {
	k, err := u.svc.RotateKey(r.Context(), caller(r))
	u.done(w, r, "/admin/keys", err, fmt.Sprintf("Key %s is now active.", k.ID))
}
