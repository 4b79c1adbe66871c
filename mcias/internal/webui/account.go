package webui

import (
	"html/template"
	"net/http"

	"github.com/go-chi/chi/v5"

	mcweb "git.metacircular.net/metacircular/mcdsl/web"
	"git.metacircular.net/metacircular/mcias/internal/identity"
)

// accountData is the self-service page.
type accountData struct {
	Account  identity.Account
	Passkeys []identity.PasskeyInfo
}

// account is GET /account.
func (u *UI) account(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	a, err := u.svc.GetAccount(r.Context(), c, c.Subject)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	d := accountData{Account: a}
	if u.passkeys {
		if d.Passkeys, err = u.svc.ListPasskeys(r.Context(), c, c.Subject); err != nil {
			u.fail(w, r, err)
			return
		}
	}
	u.render(w, r, http.StatusOK, "account", "Your account", d)
}

// changePassword is POST /account/password.
func (u *UI) changePassword(w http.ResponseWriter, r *http.Request) {
	next := r.PostFormValue("new_password")
	if next != r.PostFormValue("confirm_password") {
		flash(w, true, "The new passwords do not match.")
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	iss, err := u.svc.ChangePassword(r.Context(), caller(r), caller(r).Subject, r.PostFormValue("current_password"), next)
	u.renewSession(w, iss)
	u.done(w, r, "/account", err, "Your password is changed. Every other session of your account was signed out.")
}

// renewSession puts the fresh token a credential change answers with into
// the session cookie: the change revoked every token of the account,
// including the one this session held.
func (u *UI) renewSession(w http.ResponseWriter, iss identity.Issued) {
	if iss.Token != "" {
		mcweb.SetSession(w, "", iss.Token, iss.ExpiresAt)
	}
}

// enrollTOTP is POST /account/totp/enroll: shows the new secret once.
func (u *UI) enrollTOTP(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	e, err := u.svc.EnrollTOTP(r.Context(), c, c.Subject)
	if err != nil {
		u.done(w, r, "/account", err, "")
		return
	}
	// The otpauth: scheme is not one html/template lets into an href by
	// itself; this URI is built by MCIAS from its own values.
	u.render(w, r, http.StatusOK, "totp_enroll", "Set up two-factor", struct {
		Secret string
		URI    template.URL
	}{e.Secret, template.URL(e.URI)}) //nolint:gosec // G203: otpauth URI made by totp.URI, its parts escaped there
}

// confirmTOTP is POST /account/totp/confirm: shows the recovery codes once.
func (u *UI) confirmTOTP(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	codes, iss, err := u.svc.ConfirmTOTP(r.Context(), c, c.Subject, r.PostFormValue("code"))
	if err != nil {
		u.done(w, r, "/account", err, "")
		return
	}
	u.renewSession(w, iss)
	u.render(w, r, http.StatusOK, "recovery_codes", "Recovery codes", struct{ Codes []string }{codes})
}

// disableTOTP is POST /account/totp/disable (with a current or recovery
// code).
func (u *UI) disableTOTP(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	iss, err := u.svc.DisableTOTP(r.Context(), c, c.Subject, r.PostFormValue("code"))
	u.renewSession(w, iss)
	u.done(w, r, "/account", err, "Two-factor is off. Every other session of your account was signed out.")
}

// renamePasskey is POST /account/passkeys/{credential}/rename.
func (u *UI) renamePasskey(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	_, err := u.svc.RenamePasskey(r.Context(), c, c.Subject, chi.URLParam(r, "credential"), r.PostFormValue("name"))
	u.done(w, r, "/account", err, "Passkey renamed.")
}

// deletePasskey is POST /account/passkeys/{credential}/delete.
func (u *UI) deletePasskey(w http.ResponseWriter, r *http.Request) {
	c := caller(r)
	err := u.svc.DeletePasskey(r.Context(), c, c.Subject, chi.URLParam(r, "credential"))
	u.done(w, r, "/account", err, "Passkey deleted. Remove it from the device too.")
}
