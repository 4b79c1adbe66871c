package webui

import (
	"net/http"
	"strconv"
	"strings"

	mcweb "git.metacircular.net/metacircular/mcdsl/web"
	mcrv1 "git.metacircular.net/metacircular/mcr/gen/mcr/v1"
)

func (ui *UI) repos(w http.ResponseWriter, r *http.Request, p *page) {
	resp, err := ui.registry.ListRepositories(r.Context(), &mcrv1.ListRepositoriesRequest{})
	if err != nil {
		ui.fail(w, p, err)
		return
	}
	p.Data = struct{ Repos []*mcrv1.Repository }{resp.GetRepositories()}
	ui.show(w, http.StatusOK, "repos", p, "")
}

func (ui *UI) repo(w http.ResponseWriter, r *http.Request, p *page) {
	resp, err := ui.registry.GetRepository(r.Context(), &mcrv1.GetRepositoryRequest{Name: r.PathValue("name")})
	if err != nil {
		ui.fail(w, p, err)
		return
	}
	p.Data = struct {
		Repo      *mcrv1.Repository
		Tags      []*mcrv1.Tag
		Manifests []*mcrv1.ManifestSummary
	}{resp.GetRepository(), resp.GetTags(), resp.GetManifests()}
	ui.show(w, http.StatusOK, "repo", p, "")
}

func (ui *UI) manifest(w http.ResponseWriter, r *http.Request, p *page) {
	q := r.URL.Query()
	resp, err := ui.registry.GetManifest(r.Context(), &mcrv1.GetManifestRequest{Repository: q.Get("repo"), Reference: q.Get("ref")})
	if err != nil {
		ui.fail(w, p, err)
		return
	}
	p.Data = struct {
		Repo string
		M    *mcrv1.GetManifestResponse
	}{q.Get("repo"), resp}
	ui.show(w, http.StatusOK, "manifest", p, "")
}

type policiesData struct {
	Admin  bool
	Rules  []*mcrv1.Policy
	Agents []string
	Mine   []*mcrv1.Repository
}

func (ui *UI) policiesPage(w http.ResponseWriter, r *http.Request, p *page) {
	ui.showPolicies(w, r, p, http.StatusOK, "")
}

func (ui *UI) showPolicies(w http.ResponseWriter, r *http.Request, p *page, status int, errMsg string) {
	d := policiesData{Admin: p.User.IsAdmin()}
	if d.Admin {
		resp, err := ui.policies.ListPolicies(r.Context(), &mcrv1.ListPoliciesRequest{})
		if err != nil {
			ui.fail(w, p, err)
			return
		}
		d.Rules, d.Agents = resp.GetPolicies(), resp.GetAgentAccounts()
	} else {
		resp, err := ui.registry.ListRepositories(r.Context(), &mcrv1.ListRepositoriesRequest{})
		if err != nil {
			ui.fail(w, p, err)
			return
		}
		d.Mine = resp.GetRepositories()
	}
	p.Data = d
	ui.show(w, status, "policies", p, errMsg)
}

// list splits a comma- or space-separated form field.
func list(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
}

func (ui *UI) addPolicy(w http.ResponseWriter, r *http.Request, p *page) {
	prio, err := strconv.ParseInt(r.PostFormValue("priority"), 10, 32)
	if err != nil {
		ui.showPolicies(w, r, p, http.StatusBadRequest, "priority: want a number")
		return
	}
	_, err = ui.policies.CreatePolicy(r.Context(), &mcrv1.CreatePolicyRequest{Policy: &mcrv1.Policy{
		Priority: int32(prio), Effect: r.PostFormValue("effect"), Repository: strings.TrimSpace(r.PostFormValue("repository")),
		Accounts: list(r.PostFormValue("accounts")), Roles: list(r.PostFormValue("roles")),
		AccountTypes: list(r.PostFormValue("account_types")), Actions: list(r.PostFormValue("actions")),
		Description: strings.TrimSpace(r.PostFormValue("description")),
	}})
	if err != nil {
		ui.showPolicies(w, r, p, http.StatusBadRequest, errMessage(err))
		return
	}
	mcweb.SetFlash(w, "Rule added.")
	http.Redirect(w, r, "/policies", http.StatusSeeOther)
}

func (ui *UI) deletePolicy(w http.ResponseWriter, r *http.Request, p *page) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		ui.showPolicies(w, r, p, http.StatusBadRequest, "no such rule")
		return
	}
	if _, err := ui.policies.DeletePolicy(r.Context(), &mcrv1.DeletePolicyRequest{Id: id}); err != nil {
		ui.fail(w, p, err)
		return
	}
	mcweb.SetFlash(w, "Rule deleted.")
	http.Redirect(w, r, "/policies", http.StatusSeeOther)
}
