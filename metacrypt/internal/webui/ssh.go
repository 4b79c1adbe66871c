package webui

import (
	"cmp"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// The pages of an SSH CA mount ("ssh"): the CA key and how hosts trust
// it, signing profiles, signing a pasted public key, and the certificate
// records with revocation by serial, key, fingerprint or key ID. Every
// call is SSHService's.

// sshCertTypes are the profile certificate types the form offers; the
// API checks them again.
var sshCertTypes = []string{"user", "host"}

// sshStatuses are the certificate list's status filter values.
var sshStatuses = []string{"valid", "revoked", "expired"}

func (ui *UI) sshRoutes(m *http.ServeMux) {
	on := func(pattern string, h handler) { m.HandleFunc(pattern, ui.mounted(engineSSH, h)) }
	on("GET /ssh/{mount}", ui.sshCAPage)
	on("POST /ssh/{mount}/ca", ui.generateSSHCA)
	on("GET /ssh/{mount}/profiles", ui.sshProfilesPage)
	on("POST /ssh/{mount}/profiles", ui.saveSSHProfile)
	on("POST /ssh/{mount}/profiles/{name}", ui.saveSSHProfile)
	on("POST /ssh/{mount}/profiles/{name}/delete", ui.deleteSSHProfile)
	on("GET /ssh/{mount}/sign", ui.sshSignPage)
	on("POST /ssh/{mount}/sign", ui.signSSH)
	on("GET /ssh/{mount}/certs", ui.sshCertsPage)
	on("GET /ssh/{mount}/certs/{serial}", ui.sshCertPage)
	on("POST /ssh/{mount}/certs/{serial}/revoke", ui.revokeSSHSerial)
	on("POST /ssh/{mount}/revoke", ui.revokeSSHKey)
}

// sshPath is a path of mount's SSH pages.
func sshPath(mount, rest string) string { return mountPath(engineSSH, mount) + rest }

// sshStatus is an SSH certificate's state as the list's status filter
// names it.
func sshStatus(c *mcv1.SSHCertificate) string {
	switch {
	case c.GetRevoked():
		return "revoked"
	case c.GetValidBefore() != nil && c.GetValidBefore().AsTime().Before(time.Now()):
		return "expired"
	}
	return "valid"
}

type sshCAData struct {
	// CA is nil while the mount has no CA key; NoCA is then the API's
	// answer, and the page offers to generate one.
	CA   *mcv1.SSHCA
	NoCA string
	// KeyLine is the CA key's authorized_keys line without its newline.
	KeyLine    string
	KRLVersion uint64
	KRLDate    *timestamppb.Timestamp
	// CAURL and KRLURL are the public endpoints hosts fetch.
	CAURL, KRLURL string
	// KeyType and KeyTypes are the generate form's.
	KeyType  string
	KeyTypes []string
}

func (ui *UI) sshCAPage(w http.ResponseWriter, r *http.Request, p *page) {
	ui.showSSHCA(w, r, p, http.StatusOK, string(pki.Ed25519))
}

// showSSHCA shows the CA key (GetCA, any signed-in user) and the KRL's
// state (KRL), or the generate form while there is no key.
func (ui *UI) showSSHCA(w http.ResponseWriter, r *http.Request, p *page, status int, keyType string) {
	base := "https://" + r.Host + "/v1/ssh/" + url.PathEscape(p.Mount)
	d := sshCAData{CAURL: base + "/ca", KRLURL: base + "/krl", KeyType: keyType, KeyTypes: caKeyTypes}
	resp, err := ui.ssh.GetCA(r.Context(), &mcv1.GetSSHCARequest{Mount: p.Mount})
	switch {
	case err == nil:
		d.CA, d.KeyLine = resp.GetCa(), strings.TrimSpace(resp.GetCa().GetPublicKey())
		krl, err := ui.ssh.KRL(r.Context(), &mcv1.GetSSHKRLRequest{Mount: p.Mount})
		if err != nil {
			ui.fail(w, r, p, err)
			return
		}
		d.KRLVersion, d.KRLDate = krl.GetVersion(), krl.GetGeneratedAt()
	case apierr.FromGRPC(err).Kind == apierr.Precondition:
		// No CA key yet, or a mount of another type (both 412): only an
		// SSH mount gets the generate form.
		typ, terr := ui.mountType(r, p.Mount)
		if terr != nil || typ != engineSSH {
			ui.fail(w, r, p, cmp.Or(terr, err))
			return
		}
		d.NoCA = apierr.FromGRPC(err).Message
	default:
		ui.fail(w, r, p, err)
		return
	}
	p.Nav, p.Data = "ssh-ca", d
	ui.show(w, status, "ssh_ca", p)
}

// generateSSHCA makes the mount's CA key (manage on "ca").
func (ui *UI) generateSSHCA(w http.ResponseWriter, r *http.Request, p *page) {
	keyType := r.PostFormValue("key_type")
	resp, err := ui.ssh.GenerateCA(r.Context(), &mcv1.GenerateSSHCARequest{Mount: p.Mount, KeyType: keyType})
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showSSHCA(w, r, p, status, keyType) })
		return
	}
	ui.d.Logger.Info("web: ssh ca generated", "mount", p.Mount, "fingerprint", resp.GetCa().GetFingerprint(), "by", p.User.Username)
	done(w, r, "SSH CA key generated: "+resp.GetCa().GetFingerprint()+".", sshPath(p.Mount, ""))
}

// sshProfileForm is the profile form's fields. Lists are comma- or
// space-separated; critical options are "name=value" lines.
type sshProfileForm struct {
	Name, CertType, AllowedPrincipals, DefaultPrincipals, MaxTTL, DefaultTTL      string
	AllowedExtensions, DefaultExtensions, CriticalOptions, AllowedCriticalOptions string
	KeyTypes, MinRSABits                                                          string
	// Update: the form replaces profile Name instead of creating one.
	Update bool
}

func sshProfileFormOf(pr *mcv1.SSHProfile) sshProfileForm {
	j := func(l []string) string { return strings.Join(l, ", ") }
	return sshProfileForm{
		Name: pr.GetName(), CertType: pr.GetCertType(), AllowedPrincipals: j(pr.GetAllowedPrincipals()),
		DefaultPrincipals: j(pr.GetDefaultPrincipals()), MaxTTL: pr.GetMaxTtl(), DefaultTTL: pr.GetDefaultTtl(),
		AllowedExtensions: j(pr.GetAllowedExtensions()), DefaultExtensions: j(pr.GetDefaultExtensions()),
		CriticalOptions: pairs(pr.GetCriticalOptions()), AllowedCriticalOptions: j(pr.GetAllowedCriticalOptions()),
		KeyTypes: j(pr.GetKeyTypes()), MinRSABits: strconv.Itoa(int(pr.GetMinRsaBits())), Update: true,
	}
}

func readSSHProfileForm(r *http.Request) sshProfileForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return sshProfileForm{
		Name: v("name"), CertType: v("cert_type"), AllowedPrincipals: v("allowed_principals"), DefaultPrincipals: v("default_principals"),
		MaxTTL: v("max_ttl"), DefaultTTL: v("default_ttl"), AllowedExtensions: v("allowed_extensions"),
		DefaultExtensions: v("default_extensions"), CriticalOptions: v("critical_options"),
		AllowedCriticalOptions: v("allowed_critical_options"), KeyTypes: v("key_types"), MinRSABits: v("min_rsa_bits"),
	}
}

// request translates the form; the API validates the values.
func (f sshProfileForm) request(mount string) (*mcv1.SSHProfileRequest, error) {
	var bits int32
	if f.MinRSABits != "" {
		n, err := strconv.ParseInt(f.MinRSABits, 10, 32)
		if err != nil {
			return nil, badField("min_rsa_bits", "want a whole number, got %q", f.MinRSABits)
		}
		bits = int32(n)
	}
	opts, err := optionLines("critical_options", f.CriticalOptions)
	if err != nil {
		return nil, err
	}
	return &mcv1.SSHProfileRequest{
		Mount: mount, Name: f.Name, CertType: f.CertType, AllowedPrincipals: list(f.AllowedPrincipals),
		DefaultPrincipals: list(f.DefaultPrincipals), MaxTtl: f.MaxTTL, DefaultTtl: f.DefaultTTL,
		AllowedExtensions: list(f.AllowedExtensions), DefaultExtensions: list(f.DefaultExtensions), CriticalOptions: opts,
		AllowedCriticalOptions: list(f.AllowedCriticalOptions), KeyTypes: list(f.KeyTypes), MinRsaBits: bits,
	}, nil
}

// optionLines parses "name=value" lines: a value may hold commas and
// spaces (source-address is a CIDR list, force-command a command line),
// so only line breaks separate options.
func optionLines(field, text string) (map[string]string, error) {
	var out map[string]string
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, badField(field, "want name=value on each line, got %q", line)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

type sshProfilesData struct {
	Profiles []*mcv1.SSHProfile
	// ListDenied is the API's refusal to list the profiles.
	ListDenied string
	Form       sshProfileForm
	CertTypes  []string
}

func (ui *UI) sshProfilesPage(w http.ResponseWriter, r *http.Request, p *page) {
	f := sshProfileForm{CertType: "user"}
	if edit := r.URL.Query().Get("edit"); edit != "" {
		resp, err := ui.ssh.GetProfile(r.Context(), &mcv1.GetSSHProfileRequest{Mount: p.Mount, Name: edit})
		if err != nil {
			ui.fail(w, r, p, err)
			return
		}
		f = sshProfileFormOf(resp.GetProfile())
	}
	ui.showSSHProfiles(w, r, p, http.StatusOK, f)
}

// showSSHProfiles lists the profiles (read on "profiles") beside the
// create or update form (manage on "profile/<name>").
func (ui *UI) showSSHProfiles(w http.ResponseWriter, r *http.Request, p *page, status int, f sshProfileForm) {
	d := sshProfilesData{Form: f, CertTypes: sshCertTypes}
	resp, err := ui.ssh.ListProfiles(r.Context(), &mcv1.ListSSHProfilesRequest{Mount: p.Mount})
	if err != nil {
		msg, ok := listDenied(err)
		if !ok {
			ui.fail(w, r, p, err)
			return
		}
		d.ListDenied = msg
	}
	d.Profiles = resp.GetProfiles()
	p.Nav, p.Data = "ssh-profiles", d
	ui.show(w, status, "ssh_profiles", p)
}

// saveSSHProfile creates a profile, or replaces the one named in the
// path.
func (ui *UI) saveSSHProfile(w http.ResponseWriter, r *http.Request, p *page) {
	f := readSSHProfileForm(r)
	if name := r.PathValue("name"); name != "" {
		f.Name, f.Update = name, true
	}
	req, err := f.request(p.Mount)
	if err == nil {
		if f.Update {
			_, err = ui.ssh.UpdateProfile(r.Context(), req)
		} else {
			_, err = ui.ssh.CreateProfile(r.Context(), req)
		}
	}
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showSSHProfiles(w, r, p, status, f) })
		return
	}
	what := "created"
	if f.Update {
		what = "updated"
	}
	ui.d.Logger.Info("web: ssh profile "+what, "mount", p.Mount, "profile", f.Name, "by", p.User.Username)
	done(w, r, "Profile "+f.Name+" "+what+".", sshPath(p.Mount, "/profiles"))
}

func (ui *UI) deleteSSHProfile(w http.ResponseWriter, r *http.Request, p *page) {
	name := r.PathValue("name")
	if _, err := ui.ssh.DeleteProfile(r.Context(), &mcv1.DeleteSSHProfileRequest{Mount: p.Mount, Name: name}); err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showSSHProfiles(w, r, p, status, sshProfileForm{CertType: "user"}) })
		return
	}
	ui.d.Logger.Info("web: ssh profile deleted", "mount", p.Mount, "profile", name, "by", p.User.Username)
	done(w, r, "Profile "+name+" deleted.", sshPath(p.Mount, "/profiles"))
}

// sshSignForm is the sign form's fields.
type sshSignForm struct {
	Profile, PublicKey, Principals, TTL, Extensions, CriticalOptions string
}

type sshSignData struct {
	Form sshSignForm
	// FormID makes the form one-time (see submissions): a reload must not
	// sign a second certificate.
	FormID string
	// Profiles to choose from; nil when the caller may not list them.
	Profiles []*mcv1.SSHProfile
}

func (ui *UI) sshSignPage(w http.ResponseWriter, r *http.Request, p *page) {
	ui.showSSHSign(w, r, p, http.StatusOK, sshSignForm{Profile: r.URL.Query().Get("profile")})
}

func (ui *UI) showSSHSign(w http.ResponseWriter, r *http.Request, p *page, status int, f sshSignForm) {
	resp, err := ui.ssh.ListProfiles(r.Context(), &mcv1.ListSSHProfilesRequest{Mount: p.Mount})
	if err != nil {
		if _, ok := listDenied(err); !ok {
			ui.fail(w, r, p, err)
			return
		}
	}
	p.Nav, p.Data = "ssh-sign", sshSignData{Form: f, FormID: ui.forms.newID(), Profiles: resp.GetProfiles()}
	ui.show(w, status, "ssh_sign", p)
}

// sshSignedData is the sign form's answer.
type sshSignedData struct {
	Certificate string
	Record      *mcv1.SSHCertificate
	// Download saves the certificate as FileName, ssh-keygen's name for
	// a certificate of such a key, so ssh finds it beside the key.
	Download template.URL
	FileName string
}

// certFileName is the name ssh-keygen gives a certificate of a key of
// this type (id_<type>-cert.pub), which ssh looks for beside the key.
func certFileName(keyType string) string {
	switch {
	case strings.HasPrefix(keyType, "sk-ssh-ed25519"):
		return "id_ed25519_sk-cert.pub"
	case strings.HasPrefix(keyType, "sk-ecdsa"):
		return "id_ecdsa_sk-cert.pub"
	case keyType == "ssh-ed25519":
		return "id_ed25519-cert.pub"
	case strings.HasPrefix(keyType, "ecdsa-"):
		return "id_ecdsa-cert.pub"
	case keyType == "ssh-rsa":
		return "id_rsa-cert.pub"
	}
	return "ssh-cert.pub"
}

// signSSH signs the pasted public key under the profile (sign on
// "profile/<name>"; the profile decides the principals, TTL, extensions
// and options). The certificate is shown in the answer.
func (ui *UI) signSSH(w http.ResponseWriter, r *http.Request, p *page) {
	f := sshSignForm{
		Profile: strings.TrimSpace(r.PostFormValue("profile")), PublicKey: strings.TrimSpace(r.PostFormValue("public_key")),
		Principals: r.PostFormValue("principals"), TTL: strings.TrimSpace(r.PostFormValue("ttl")),
		Extensions: r.PostFormValue("extensions"), CriticalOptions: r.PostFormValue("critical_options"),
	}
	opts, err := optionLines("critical_options", f.CriticalOptions)
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showSSHSign(w, r, p, status, f) })
		return
	}
	id := r.PostFormValue("form_id")
	if !ui.forms.take(id) {
		p.Error, p.Code = "This form was sent already or is too old, so nothing was signed this time. "+
			"The certificate list shows what was signed; fill in the form again for another.", http.StatusConflict
		ui.showSSHSign(w, r, p, http.StatusConflict, f)
		return
	}
	resp, err := ui.ssh.Sign(r.Context(), &mcv1.SSHSignRequest{
		Mount: p.Mount, Profile: f.Profile, PublicKey: f.PublicKey, Principals: list(f.Principals), Ttl: f.TTL,
		Extensions: list(f.Extensions), CriticalOptions: opts,
	})
	if err != nil {
		ui.forms.giveBack(id)
		ui.formError(w, r, p, err, func(status int) { ui.showSSHSign(w, r, p, status, f) })
		return
	}
	rec := resp.GetRecord()
	ui.d.Logger.Info("web: ssh certificate signed", "mount", p.Mount, "serial", rec.GetSerial(), "profile", rec.GetProfile(), "by", p.User.Username)
	p.Nav = "ssh-sign"
	p.Data = sshSignedData{
		Certificate: resp.GetCertificate(), Record: rec,
		Download: dataURL("text/plain", []byte(resp.GetCertificate())), FileName: certFileName(rec.GetKeyType()),
	}
	ui.show(w, http.StatusOK, "ssh_signed", p)
}

// sshCertQuery is the certificate list's filter.
type sshCertQuery struct {
	Profile, Principal, RequestedBy, Status string
	Page                                    int
}

func (q sshCertQuery) values(page int) string {
	v := url.Values{}
	for k, s := range map[string]string{"profile": q.Profile, "principal": q.Principal, "requested_by": q.RequestedBy, "status": q.Status} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if page > 0 {
		v.Set("page", strconv.Itoa(page))
	}
	return "?" + v.Encode()
}

// sshRevokeForm revokes by anything but a serial: a public key (its
// certificates and the key itself), its fingerprint, or a key ID.
type sshRevokeForm struct {
	PublicKey, Fingerprint, KeyID string
}

type sshCertsData struct {
	Query sshCertQuery
	Certs []*mcv1.SSHCertificate
	// ListDenied is the API's refusal to list (read on "certs").
	ListDenied string
	Prev, Next string
	Truncated  bool
	Statuses   []string
	Revoke     sshRevokeForm
}

func (ui *UI) sshCertsPage(w http.ResponseWriter, r *http.Request, p *page) {
	v := r.URL.Query()
	q := sshCertQuery{
		Profile: strings.TrimSpace(v.Get("profile")), Principal: strings.TrimSpace(v.Get("principal")),
		RequestedBy: strings.TrimSpace(v.Get("requested_by")), Status: v.Get("status"), Page: pageParam(v),
	}
	ui.showSSHCerts(w, r, p, http.StatusOK, q, sshRevokeForm{})
}

// showSSHCerts lists the certificate records (read on "certs") beside
// the revoke-by-key form (revoke on "krl").
func (ui *UI) showSSHCerts(w http.ResponseWriter, r *http.Request, p *page, status int, q sshCertQuery, f sshRevokeForm) {
	d := sshCertsData{Query: q, Statuses: sshStatuses, Revoke: f}
	p.Nav = "ssh-certs"
	resp, err := ui.ssh.ListCertificates(r.Context(), &mcv1.ListSSHCertificatesRequest{
		Mount: p.Mount, Profile: q.Profile, Principal: q.Principal, RequestedBy: q.RequestedBy, Status: q.Status, Limit: pageLimit(q.Page),
	})
	if err != nil {
		msg, ok := listDenied(err)
		if !ok {
			// A bad filter (status=x) is the API's 400, shown above the
			// search form.
			ui.formError(w, r, p, err, func(status int) { p.Data = d; ui.show(w, status, "ssh_certs", p) })
			return
		}
		d.ListDenied = msg
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
	ui.show(w, status, "ssh_certs", p)
}

func (ui *UI) sshCertPage(w http.ResponseWriter, r *http.Request, p *page) {
	ui.showSSHCert(w, r, p, http.StatusOK)
}

// showSSHCert shows one record (read on its profile). After a refused
// revocation (p.Error set) a record the caller may not read leaves the
// refusal on the error page rather than replacing it.
func (ui *UI) showSSHCert(w http.ResponseWriter, r *http.Request, p *page, status int) {
	resp, err := ui.ssh.GetCertificate(r.Context(), &mcv1.GetSSHCertificateRequest{Mount: p.Mount, Serial: r.PathValue("serial")})
	if err != nil {
		if p.Error != "" && apierr.FromGRPC(err).Kind == apierr.Denied {
			ui.show(w, status, "error", p)
			return
		}
		ui.fail(w, r, p, err)
		return
	}
	p.Nav, p.Data = "ssh-certs", resp.GetCertificate()
	ui.show(w, status, "ssh_cert", p)
}

// revokeSSHSerial revokes one certificate (revoke on its profile, and for
// a non-admin every principal of it allowed by that profile).
func (ui *UI) revokeSSHSerial(w http.ResponseWriter, r *http.Request, p *page) {
	serial := r.PathValue("serial")
	resp, err := ui.ssh.Revoke(r.Context(), &mcv1.SSHRevokeRequest{Mount: p.Mount, Serial: serial})
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showSSHCert(w, r, p, status) })
		return
	}
	ui.d.Logger.Info("web: ssh certificate revoked", "mount", p.Mount, "serial", serial, "krl_version", resp.GetKrlVersion(), "by", p.User.Username)
	done(w, r, fmt.Sprintf("Certificate %s revoked; the KRL is now version %d.", serial, resp.GetKrlVersion()),
		sshPath(p.Mount, "/certs/"+url.PathEscape(serial)))
}

// revokeSSHKey revokes by exactly one of a public key, a fingerprint or a
// key ID (revoke on "krl"); the API refuses none or several.
func (ui *UI) revokeSSHKey(w http.ResponseWriter, r *http.Request, p *page) {
	f := sshRevokeForm{
		PublicKey: strings.TrimSpace(r.PostFormValue("public_key")), Fingerprint: strings.TrimSpace(r.PostFormValue("fingerprint")),
		KeyID: strings.TrimSpace(r.PostFormValue("key_id")),
	}
	resp, err := ui.ssh.Revoke(r.Context(), &mcv1.SSHRevokeRequest{Mount: p.Mount, PublicKey: f.PublicKey, Fingerprint: f.Fingerprint, KeyId: f.KeyID})
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showSSHCerts(w, r, p, status, sshCertQuery{}, f) })
		return
	}
	serials := make([]string, len(resp.GetSerials()))
	for i, s := range resp.GetSerials() {
		serials[i] = strconv.FormatUint(s, 10)
	}
	ui.d.Logger.Info("web: ssh revocation", "mount", p.Mount, "serials", serials, "krl_version", resp.GetKrlVersion(), "by", p.User.Username)
	msg := fmt.Sprintf("Revoked in the KRL (now version %d)", resp.GetKrlVersion())
	if len(serials) > 0 {
		msg += ", with the certificates " + strings.Join(serials, ", ")
	}
	done(w, r, msg+".", sshPath(p.Mount, "/certs?status=revoked"))
}
