package webui

import (
	"net/http"
	"strconv"
	"strings"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// subjectForm is the subject fields both policy forms share.
type subjectForm struct {
	Priority, Effect, Accounts, Roles, AccountTypes, Mounts, Description string
}

func readSubject(r *http.Request) subjectForm {
	return subjectForm{
		Priority: strings.TrimSpace(r.PostFormValue("priority")), Effect: r.PostFormValue("effect"),
		Accounts: r.PostFormValue("accounts"), Roles: r.PostFormValue("roles"), AccountTypes: r.PostFormValue("account_types"),
		Mounts: r.PostFormValue("mounts"), Description: strings.TrimSpace(r.PostFormValue("description")),
	}
}

func (s subjectForm) subject() *mcv1.Subject {
	return &mcv1.Subject{Accounts: list(s.Accounts), Roles: list(s.Roles), AccountTypes: list(s.AccountTypes)}
}

type ruleForm struct {
	subjectForm
	Operations, Resources string
}

type limitForm struct {
	subjectForm
	Names, IPRanges string
	Wildcards       bool
}

type policyData struct {
	Rules      []*mcv1.Rule
	Limits     []*mcv1.Limit
	Rule       ruleForm
	Limit      limitForm
	Operations []string
}

func (ui *UI) policyPage(w http.ResponseWriter, r *http.Request, p *page) {
	def := subjectForm{Priority: "100", Effect: "allow"}
	ui.showPolicy(w, r, p, http.StatusOK, ruleForm{subjectForm: def}, limitForm{subjectForm: def})
}

// showPolicy lists the rules and limits. PolicyService is admin-only: the
// API refuses anyone else, and so does this page.
func (ui *UI) showPolicy(w http.ResponseWriter, r *http.Request, p *page, status int, rf ruleForm, lf limitForm) {
	rules, err := ui.policy.ListRules(r.Context(), &mcv1.ListRulesRequest{})
	if err != nil {
		ui.fail(w, r, p, err)
		return
	}
	limits, err := ui.policy.ListLimits(r.Context(), &mcv1.ListLimitsRequest{})
	if err != nil {
		ui.fail(w, r, p, err)
		return
	}
	p.Nav = "policy"
	p.Data = policyData{Rules: rules.GetRules(), Limits: limits.GetLimits(), Rule: rf, Limit: lf, Operations: policy.Operations}
	ui.show(w, status, "policy", p)
}

// priority parses the priority field; the API checks its range.
func priority(s string) (int32, bool) {
	n, err := strconv.ParseInt(s, 10, 32)
	return int32(n), err == nil
}

func (ui *UI) createRule(w http.ResponseWriter, r *http.Request, p *page) {
	f := ruleForm{subjectForm: readSubject(r), Operations: r.PostFormValue("operations"), Resources: r.PostFormValue("resources")}
	def := limitForm{subjectForm: subjectForm{Priority: "100", Effect: "allow"}}
	prio, ok := priority(f.Priority)
	if !ok {
		p.Error, p.Code = "priority: want a whole number", http.StatusBadRequest
		ui.showPolicy(w, r, p, http.StatusBadRequest, f, def)
		return
	}
	_, err := ui.policy.CreateRule(r.Context(), &mcv1.CreateRuleRequest{Rule: &mcv1.Rule{
		Priority: prio, Effect: f.Effect, Subject: f.subject(), Mounts: list(f.Mounts),
		Operations: list(f.Operations), Resources: list(f.Resources), Description: f.Description,
	}})
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showPolicy(w, r, p, status, f, def) })
		return
	}
	done(w, r, "Rule added.", "/policy")
}

func (ui *UI) createLimit(w http.ResponseWriter, r *http.Request, p *page) {
	f := limitForm{subjectForm: readSubject(r), Names: r.PostFormValue("names"), IPRanges: r.PostFormValue("ip_ranges"),
		Wildcards: r.PostFormValue("wildcards") == "on"}
	def := ruleForm{subjectForm: subjectForm{Priority: "100", Effect: "allow"}}
	prio, ok := priority(f.Priority)
	if !ok {
		p.Error, p.Code = "priority: want a whole number", http.StatusBadRequest
		ui.showPolicy(w, r, p, http.StatusBadRequest, def, f)
		return
	}
	_, err := ui.policy.CreateLimit(r.Context(), &mcv1.CreateLimitRequest{Limit: &mcv1.Limit{
		Priority: prio, Effect: f.Effect, Subject: f.subject(), Mounts: list(f.Mounts),
		Names: list(f.Names), IpRanges: list(f.IPRanges), Wildcards: f.Wildcards, Description: f.Description,
	}})
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showPolicy(w, r, p, status, def, f) })
		return
	}
	done(w, r, "Issuance limit added.", "/policy")
}

// pathID is the {id} of a delete route.
func pathID(r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id, err == nil && id > 0
}

func (ui *UI) deleteRule(w http.ResponseWriter, r *http.Request, p *page) {
	id, ok := pathID(r)
	if !ok {
		p.Error, p.Code = "no such rule", http.StatusNotFound
		ui.show(w, http.StatusNotFound, "error", p)
		return
	}
	if _, err := ui.policy.DeleteRule(r.Context(), &mcv1.DeleteRuleRequest{Id: id}); err != nil {
		ui.fail(w, r, p, err)
		return
	}
	done(w, r, "Rule "+strconv.FormatInt(id, 10)+" deleted.", "/policy")
}

func (ui *UI) deleteLimit(w http.ResponseWriter, r *http.Request, p *page) {
	id, ok := pathID(r)
	if !ok {
		p.Error, p.Code = "no such issuance limit", http.StatusNotFound
		ui.show(w, http.StatusNotFound, "error", p)
		return
	}
	if _, err := ui.policy.DeleteLimit(r.Context(), &mcv1.DeleteLimitRequest{Id: id}); err != nil {
		ui.fail(w, r, p, err)
		return
	}
	done(w, r, "Issuance limit "+strconv.FormatInt(id, 10)+" deleted.", "/policy")
}
