package webui

import (
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// The choices the forms offer; the API checks them again.
var (
	leafKeyTypes = names(pki.KeyTypes)
	caKeyTypes   = names(pki.CAKeyTypes)
	profiles     = names(pki.Profiles)
	reasons      = []string{
		pki.Unspecified.String(), pki.KeyCompromise.String(), pki.AffiliationChanged.String(),
		pki.Superseded.String(), pki.CessationOfOperation.String(), pki.PrivilegeWithdrawn.String(),
	}
)

func names[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// issuerNames lists a mount's intermediate issuers, or ok=false when the
// caller may not list them (read on "issuers"), so a form offers a text
// field instead. Any other error is returned.
func (ui *UI) issuerNames(r *http.Request) (out []string, ok bool, err error) {
	resp, err := ui.ca.ListIssuers(r.Context(), &mcv1.ListIssuersRequest{Mount: r.PathValue("mount")})
	if err != nil {
		if apierr.FromGRPC(err).Kind == apierr.Denied {
			return nil, false, nil
		}
		return nil, false, err
	}
	for _, is := range resp.GetIssuers() {
		if !is.GetIsRoot() {
			out = append(out, is.GetName())
		}
	}
	return out, true, nil
}

// issuerForm is the create-issuer form's fields.
type issuerForm struct {
	Name, CommonName, KeyType, TTL, MaxTTL, DefaultTTL, KeyTypes, Profiles string
	PermittedDNS, ExcludedDNS, PermittedIPs, ExcludedIPs                   string
}

type issuersData struct {
	Issuers    []*mcv1.Issuer
	Form       issuerForm
	CAKeyTypes []string
}

func (ui *UI) issuersPage(w http.ResponseWriter, r *http.Request, p *page) {
	ui.showIssuers(w, r, p, http.StatusOK, issuerForm{KeyType: string(pki.ECP256)})
}

func (ui *UI) showIssuers(w http.ResponseWriter, r *http.Request, p *page, status int, f issuerForm) {
	resp, err := ui.ca.ListIssuers(r.Context(), &mcv1.ListIssuersRequest{Mount: p.Mount})
	if err != nil {
		ui.fail(w, r, p, err)
		return
	}
	p.Nav, p.Data = "issuers", issuersData{Issuers: resp.GetIssuers(), Form: f, CAKeyTypes: caKeyTypes}
	ui.show(w, status, "issuers", p)
}

func (ui *UI) createIssuer(w http.ResponseWriter, r *http.Request, p *page) {
	f := issuerForm{
		Name: strings.TrimSpace(r.PostFormValue("name")), CommonName: strings.TrimSpace(r.PostFormValue("common_name")),
		KeyType: r.PostFormValue("key_type"), TTL: strings.TrimSpace(r.PostFormValue("ttl")),
		MaxTTL: strings.TrimSpace(r.PostFormValue("max_ttl")), DefaultTTL: strings.TrimSpace(r.PostFormValue("default_ttl")),
		KeyTypes: r.PostFormValue("key_types"), Profiles: r.PostFormValue("profiles"),
		PermittedDNS: r.PostFormValue("permitted_dns_domains"), ExcludedDNS: r.PostFormValue("excluded_dns_domains"),
		PermittedIPs: r.PostFormValue("permitted_ip_ranges"), ExcludedIPs: r.PostFormValue("excluded_ip_ranges"),
	}
	_, err := ui.ca.CreateIssuer(r.Context(), &mcv1.CreateIssuerRequest{
		Mount: p.Mount, Name: f.Name, CommonName: f.CommonName, KeyType: f.KeyType, Ttl: f.TTL,
		MaxTtl: f.MaxTTL, DefaultTtl: f.DefaultTTL, KeyTypes: list(f.KeyTypes), Profiles: list(f.Profiles),
		PermittedDnsDomains: list(f.PermittedDNS), ExcludedDnsDomains: list(f.ExcludedDNS),
		PermittedIpRanges: list(f.PermittedIPs), ExcludedIpRanges: list(f.ExcludedIPs),
	})
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showIssuers(w, r, p, status, f) })
		return
	}
	done(w, r, "Issuer "+f.Name+" created.", "/mounts/"+url.PathEscape(p.Mount))
}

// issueForm is the issue form's fields.
type issueForm struct {
	Issuer, CommonName, DNSNames, IPAddresses, TTL, KeyType, Profile string
}

type issueData struct {
	Form issueForm
	// FormID makes the form one-time (see submissions).
	FormID string
	// Issuers to choose from; nil when the caller may not list them.
	Issuers  []string
	KeyTypes []string
	Profiles []string
}

func (ui *UI) issuePage(w http.ResponseWriter, r *http.Request, p *page) {
	ui.showIssue(w, r, p, http.StatusOK, issueForm{Issuer: r.URL.Query().Get("issuer"), KeyType: string(pki.ECP256), Profile: string(pki.Server)})
}

func (ui *UI) showIssue(w http.ResponseWriter, r *http.Request, p *page, status int, f issueForm) {
	issuers, _, err := ui.issuerNames(r)
	if err != nil {
		ui.fail(w, r, p, err)
		return
	}
	p.Nav = "issue"
	p.Data = issueData{Form: f, FormID: ui.forms.newID(), Issuers: issuers, KeyTypes: leafKeyTypes, Profiles: profiles}
	ui.show(w, status, "issue", p)
}

// issuedData is the one page that ever shows an issued private key.
type issuedData struct {
	Cert                         *mcv1.Certificate
	ChainPEM, CAChainPEM, KeyPEM string
	// ChainURL and KeyURL download the PEM files without a second request
	// (data: URLs); the key is never stored, so it cannot be fetched again.
	ChainURL, KeyURL template.URL
}

// pemURL is a data: URL of a PEM text.
func pemURL(text string) template.URL { return dataURL("application/x-pem-file", []byte(text)) }

// dataURL is a data: URL of b as mediaType (one of this package's
// constants). base64 carries no character that could leave the
// attribute, so it is safe as a template.URL.
func dataURL(mediaType string, b []byte) template.URL {
	return template.URL("data:" + mediaType + ";base64," + base64.StdEncoding.EncodeToString(b)) //nolint:gosec // built here from a constant and base64 only
}

func (ui *UI) issue(w http.ResponseWriter, r *http.Request, p *page) {
	f := issueForm{
		Issuer: strings.TrimSpace(r.PostFormValue("issuer")), CommonName: strings.TrimSpace(r.PostFormValue("common_name")),
		DNSNames: r.PostFormValue("dns_names"), IPAddresses: r.PostFormValue("ip_addresses"),
		TTL: strings.TrimSpace(r.PostFormValue("ttl")), KeyType: r.PostFormValue("key_type"), Profile: r.PostFormValue("profile"),
	}
	id := r.PostFormValue("form_id")
	if !ui.forms.take(id) {
		p.Error, p.Code = "This form was sent already or is too old, so nothing was issued this time. "+
			"The certificate list shows what was issued; fill in the form again for another.", http.StatusConflict
		ui.showIssue(w, r, p, http.StatusConflict, f)
		return
	}
	resp, err := ui.ca.Issue(r.Context(), &mcv1.IssueRequest{
		Mount: p.Mount, Issuer: f.Issuer, CommonName: f.CommonName, DnsNames: list(f.DNSNames),
		IpAddresses: list(f.IPAddresses), KeyType: f.KeyType, Ttl: f.TTL, Profile: f.Profile,
	})
	if err != nil {
		ui.forms.giveBack(id)
		ui.formError(w, r, p, err, func(status int) { ui.showIssue(w, r, p, status, f) })
		return
	}
	ui.d.Logger.Info("web: certificate issued", "mount", p.Mount, "serial", resp.GetCertificate().GetSerial(), "by", p.User.Username)
	p.Nav = "issue"
	p.Data = issuedData{
		Cert: resp.GetCertificate(), ChainPEM: resp.GetChainPem(), CAChainPEM: resp.GetCaChainPem(), KeyPEM: resp.GetPrivateKeyPem(),
		ChainURL: pemURL(resp.GetChainPem()), KeyURL: pemURL(resp.GetPrivateKeyPem()),
	}
	ui.show(w, http.StatusOK, "issued", p)
}

// certQuery is the certificate search.
type certQuery struct {
	Q, Status, Issuer, RequestedBy, ExpiringWithin string
	Page                                           int
}

func (q certQuery) values(page int) string {
	v := url.Values{}
	for k, s := range map[string]string{"q": q.Q, "status": q.Status, "issuer": q.Issuer, "requested_by": q.RequestedBy, "expiring_within": q.ExpiringWithin} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if page > 0 {
		v.Set("page", strconv.Itoa(page))
	}
	return "?" + v.Encode()
}

type certsData struct {
	Query   certQuery
	Certs   []*mcv1.Certificate
	Issuers []string
	// BySerial: the query was a serial and this is its certificate.
	BySerial bool
	// Prev and Next are the neighbouring pages' queries ("" for none);
	// Truncated says the search matches more than paging reaches.
	Prev, Next string
	Truncated  bool
	Statuses   []string
}

func (ui *UI) certsPage(w http.ResponseWriter, r *http.Request, p *page) {
	v := r.URL.Query()
	q := certQuery{
		Q: strings.TrimSpace(v.Get("q")), Status: v.Get("status"), Issuer: v.Get("issuer"),
		RequestedBy: strings.TrimSpace(v.Get("requested_by")), ExpiringWithin: strings.TrimSpace(v.Get("expiring_within")),
	}
	q.Page = pageParam(v)
	d := certsData{Query: q, Statuses: []string{"valid", "revoked", "expired"}}
	issuers, _, err := ui.issuerNames(r)
	if err != nil {
		ui.fail(w, r, p, err)
		return
	}
	d.Issuers = issuers
	p.Nav = "certs"
	// A query that reads as a serial is looked up as one first; an IPv6
	// address or a hex-only DNS label may also read so, hence the name
	// search when there is no such serial.
	if q.Q != "" {
		if _, perr := pki.ParseSerial("q", q.Q); perr == nil {
			resp, err := ui.ca.GetCertificate(r.Context(), &mcv1.GetCertificateRequest{Mount: p.Mount, Serial: q.Q})
			switch {
			case err == nil:
				d.Certs, d.BySerial = []*mcv1.Certificate{resp.GetCertificate()}, true
				p.Data = d
				ui.show(w, http.StatusOK, "certs", p)
				return
			case apierr.FromGRPC(err).Kind != apierr.NotFound:
				ui.formError(w, r, p, err, func(status int) { p.Data = d; ui.show(w, status, "certs", p) })
				return
			}
		}
	}
	resp, err := ui.ca.ListCertificates(r.Context(), &mcv1.ListCertificatesRequest{
		Mount: p.Mount, Name: q.Q, Issuer: q.Issuer, RequestedBy: q.RequestedBy, Status: q.Status,
		ExpiringWithin: q.ExpiringWithin, Limit: pageLimit(q.Page),
	})
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { p.Data = d; ui.show(w, status, "certs", p) })
		return
	}
	var next bool
	d.Certs, next, d.Truncated = paged(resp.GetCertificates(), q.Page)
	if q.Page > 0 {
		d.Prev = q.values(q.Page - 1)
	}
	if next {
		d.Next = q.values(q.Page + 1)
	}
	p.Data = d
	ui.show(w, http.StatusOK, "certs", p)
}

type certData struct {
	Cert    *mcv1.Certificate
	Reasons []string
}

func (ui *UI) certPage(w http.ResponseWriter, r *http.Request, p *page) {
	ui.showCert(w, r, p, http.StatusOK)
}

func (ui *UI) showCert(w http.ResponseWriter, r *http.Request, p *page, status int) {
	resp, err := ui.ca.GetCertificate(r.Context(), &mcv1.GetCertificateRequest{Mount: p.Mount, Serial: r.PathValue("serial")})
	if err != nil {
		ui.fail(w, r, p, err)
		return
	}
	p.Nav, p.Data = "certs", certData{Cert: resp.GetCertificate(), Reasons: reasons}
	ui.show(w, status, "cert", p)
}

// revoke revokes with the reason given; the policy decides (revoke on the
// certificate's issuer and its names within the caller's limits).
func (ui *UI) revoke(w http.ResponseWriter, r *http.Request, p *page) {
	serial := r.PathValue("serial")
	resp, err := ui.ca.Revoke(r.Context(), &mcv1.RevokeRequest{Mount: p.Mount, Serial: serial, Reason: r.PostFormValue("reason")})
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showCert(w, r, p, status) })
		return
	}
	ui.d.Logger.Info("web: certificate revoked", "mount", p.Mount, "serial", resp.GetCertificate().GetSerial(), "by", p.User.Username)
	done(w, r, "Certificate revoked; the CRL is updated.",
		"/mounts/"+url.PathEscape(p.Mount)+"/certs/"+url.PathEscape(resp.GetCertificate().GetSerial()))
}
