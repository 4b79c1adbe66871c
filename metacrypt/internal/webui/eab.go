package webui

import (
	"net/http"
	"net/url"
	"strings"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
)

// eabForm is the create-credentials form's fields. Account, AccountType
// and Roles bind them to another identity, which only admins may (the API
// refuses anyone else).
type eabForm struct {
	TTL, Account, AccountType, Roles string
}

type eabData struct {
	EABs   []*mcv1.EAB
	Form   eabForm
	FormID string
	Admin  bool
	// Created is set on the one answer that shows an HMAC key.
	Created *createdEAB
}

type createdEAB struct {
	EAB     *mcv1.EAB
	HMACKey string
	// Directories are the mount's ACME directory URLs, one per issuer the
	// caller may list (else a pattern with <issuer>).
	Directories []string
}

func (ui *UI) eabPage(w http.ResponseWriter, r *http.Request, p *page) {
	ui.showEAB(w, r, p, http.StatusOK, eabForm{}, nil)
}

func (ui *UI) showEAB(w http.ResponseWriter, r *http.Request, p *page, status int, f eabForm, created *createdEAB) {
	resp, err := ui.acme.ListEABs(r.Context(), &mcv1.ListEABsRequest{Mount: p.Mount})
	if err != nil {
		ui.fail(w, r, p, err)
		return
	}
	p.Nav = "eab"
	p.Data = eabData{EABs: resp.GetEabs(), Form: f, FormID: ui.forms.newID(), Admin: p.User.IsAdmin(), Created: created}
	ui.show(w, status, "eab", p)
}

func (ui *UI) createEAB(w http.ResponseWriter, r *http.Request, p *page) {
	f := eabForm{
		TTL: strings.TrimSpace(r.PostFormValue("ttl")), Account: strings.TrimSpace(r.PostFormValue("account")),
		AccountType: r.PostFormValue("account_type"), Roles: r.PostFormValue("roles"),
	}
	id := r.PostFormValue("form_id")
	if !ui.forms.take(id) {
		p.Error, p.Code = "This form was sent already or is too old, so no credentials were made this time; make new ones below.", http.StatusConflict
		ui.showEAB(w, r, p, http.StatusConflict, f, nil)
		return
	}
	resp, err := ui.acme.CreateEAB(r.Context(), &mcv1.CreateEABRequest{
		Mount: p.Mount, Account: f.Account, AccountType: f.AccountType, Roles: list(f.Roles), Ttl: f.TTL,
	})
	if err != nil {
		ui.forms.giveBack(id)
		ui.formError(w, r, p, err, func(status int) { ui.showEAB(w, r, p, status, f, nil) })
		return
	}
	ui.d.Logger.Info("web: EAB credentials created", "mount", p.Mount, "kid", resp.GetEab().GetKid(), "account", resp.GetEab().GetAccount(), "by", p.User.Username)
	c := &createdEAB{EAB: resp.GetEab(), HMACKey: resp.GetHmacKey()}
	base := "https://" + r.Host + "/v1/pki/" + url.PathEscape(p.Mount) + "/acme/"
	if issuers, ok, err := ui.issuerNames(r); err == nil && ok && len(issuers) > 0 {
		for _, is := range issuers {
			c.Directories = append(c.Directories, base+is+"/directory")
		}
	} else {
		c.Directories = []string{base + "<issuer>/directory"}
	}
	ui.showEAB(w, r, p, http.StatusOK, eabForm{}, c)
}

func (ui *UI) revokeEAB(w http.ResponseWriter, r *http.Request, p *page) {
	kid := r.PathValue("kid")
	if _, err := ui.acme.RevokeEAB(r.Context(), &mcv1.RevokeEABRequest{Mount: p.Mount, Kid: kid}); err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showEAB(w, r, p, status, eabForm{}, nil) })
		return
	}
	ui.d.Logger.Info("web: EAB credentials revoked", "mount", p.Mount, "kid", kid, "by", p.User.Username)
	done(w, r, "Credentials "+kid+" revoked; an ACME account made with them is deactivated.", "/mounts/"+url.PathEscape(p.Mount)+"/eab")
}
