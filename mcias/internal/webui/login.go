package webui

import (
	"errors"
	"net/http"

	mcweb "git.metacircular.net/metacircular/mcdsl/web"
	"git.metacircular.net/metacircular/mcias/internal/identity"
)

// loginData fills the login form.
type loginData struct {
	Username string
	// Password is carried in a hidden field during the TOTP step only, so
	// the person does not type it twice (the page is never cached).
	Password string
	TOTP     bool
	Next     string
	Error    string
}

// afterLogin is where a successful login goes: next when it is a local
// path, else the account page.
func afterLogin(next string) string {
	if n := safeNext(next); n != "" {
		return n
	}
	return "/account"
}

// loginPage is GET /login[?next=/path]; someone already signed in goes on
// at once.
func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Query().Get("next")
	id, err := u.session(r)
	if err != nil {
		u.fail(w, r, err)
		return
	}
	if id != nil {
		http.Redirect(w, r, afterLogin(next), http.StatusSeeOther) //nolint:gosec // G710: afterLogin allows local paths only (safeNext)
		return
	}
	u.render(w, r, http.StatusOK, "login", "Sign in", loginData{Next: safeNext(next)})
}

// login is POST /login: password, then the TOTP code if the account has
// TOTP (the form comes back with the code field), as the "mcias" service.
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	d := loginData{
		Username: r.PostFormValue("username"),
		Next:     safeNext(r.PostFormValue("next")),
	}
	pw, code := r.PostFormValue("password"), r.PostFormValue("totp_code")
	iss, err := u.svc.Login(r.Context(), identity.LoginRequest{
		Username: d.Username, Password: pw, TOTPCode: code,
		ServiceName: identity.WebServiceName, RemoteIP: r.RemoteAddr,
	})
	switch {
	case err == nil:
		mcweb.SetSession(w, "", iss.Token, iss.ExpiresAt)
		http.Redirect(w, r, afterLogin(d.Next), http.StatusSeeOther)
		return
	case errors.Is(err, identity.ErrTOTPRequired):
		d.TOTP, d.Password = true, pw
		u.render(w, r, http.StatusOK, "login", "Sign in", d)
		return
	case errors.Is(err, identity.ErrBadCredentials):
		d.Error = "Wrong username, password or code."
		u.render(w, r, http.StatusUnauthorized, "login", "Sign in", d)
		return
	}
	status, msg := u.message(err)
	d.Error = msg
	u.render(w, r, status, "login", "Sign in", d)
}

// logout is POST /logout: the session's token is revoked, not just
// forgotten by the browser.
func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	if tok := sessionToken(r); tok != "" {
		if err := u.svc.Logout(r.Context(), tok); err != nil && !errors.Is(err, identity.ErrInvalidToken) {
			u.logger.Error("web ui: logout", "error", err)
		}
	}
	mcweb.ClearSession(w, "")
	flash(w, false, "You are signed out.")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
