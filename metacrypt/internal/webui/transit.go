package webui

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/transit"
)

// The pages of a transit mount ("transit"): the named keys (list,
// create, versions and settings, rotate, configure, delete) and a form
// per operation on a key — encrypt, decrypt, rewrap, data key, sign,
// verify, HMAC, verify HMAC. Every call is TransitService's. Plaintexts
// and data keys appear only in the answer to the form that asked for
// them, which is not cached, and are never logged.

// transitKeyTypes are the key types the create form offers; the API
// checks them again.
var transitKeyTypes = names(transit.KeyTypes)

// transitOps are the operation forms of a key page: the route's last
// segment and what it calls.
var transitOps = map[string]func(ctx context.Context, c mcv1.TransitServiceClient, mount, key string, f transitForm) (transitResult, error){
	"encrypt":     transitEncrypt,
	"decrypt":     transitDecrypt,
	"rewrap":      transitRewrap,
	"datakey":     transitDataKey,
	"sign":        transitSign,
	"verify":      transitVerify,
	"hmac":        transitHMAC,
	"verify-hmac": transitVerifyHMAC,
}

func (ui *UI) transitRoutes(m *http.ServeMux) {
	on := func(pattern string, h handler) { m.HandleFunc(pattern, ui.mounted(engineTransit, h)) }
	on("GET /transit/{mount}", ui.transitKeysPage)
	on("POST /transit/{mount}/keys", ui.createTransitKey)
	on("GET /transit/{mount}/keys/{name}", ui.transitKeyPage)
	on("POST /transit/{mount}/keys/{name}/rotate", ui.rotateTransitKey)
	on("POST /transit/{mount}/keys/{name}/config", ui.configTransitKey)
	on("POST /transit/{mount}/keys/{name}/delete", ui.deleteTransitKey)
	for op := range transitOps {
		on("POST /transit/{mount}/keys/{name}/"+op, ui.transitOp(op))
	}
}

// transitKeyPath is the page of a key.
func transitKeyPath(mount, key string) string {
	return mountPath(engineTransit, mount) + "/keys/" + url.PathEscape(key)
}

// transitCreateForm is the create-key form's fields.
type transitCreateForm struct {
	Name, Type          string
	Derived, Exportable bool
}

type transitKeysData struct {
	Keys []string
	// ListDenied is the API's refusal to list the keys (read on "keys");
	// a key may still be opened by name.
	ListDenied string
	Form       transitCreateForm
	KeyTypes   []string
}

// transitKeysPage lists the keys; ?key=NAME opens a key by name (for
// callers who may use a key but not list them).
func (ui *UI) transitKeysPage(w http.ResponseWriter, r *http.Request, p *page) {
	if key := strings.TrimSpace(r.URL.Query().Get("key")); key != "" {
		http.Redirect(w, r, transitKeyPath(p.Mount, key), http.StatusSeeOther) //nolint:gosec // a path on this site: mount and key are path-escaped segments
		return
	}
	ui.showTransitKeys(w, r, p, http.StatusOK, transitCreateForm{Type: string(transit.AES256GCM96)})
}

func (ui *UI) showTransitKeys(w http.ResponseWriter, r *http.Request, p *page, status int, f transitCreateForm) {
	d := transitKeysData{Form: f, KeyTypes: transitKeyTypes}
	resp, err := ui.transit.ListKeys(r.Context(), &mcv1.TransitListKeysRequest{Mount: p.Mount})
	if err != nil {
		msg, ok := listDenied(err)
		if !ok {
			ui.fail(w, r, p, err)
			return
		}
		d.ListDenied = msg
	}
	d.Keys = resp.GetKeys()
	p.Nav, p.Data = "transit-keys", d
	ui.show(w, status, "transit_keys", p)
}

// createTransitKey creates a key (manage on "key/<name>").
func (ui *UI) createTransitKey(w http.ResponseWriter, r *http.Request, p *page) {
	f := transitCreateForm{
		Name: strings.TrimSpace(r.PostFormValue("name")), Type: r.PostFormValue("type"),
		Derived: r.PostFormValue("derived") == "on", Exportable: r.PostFormValue("exportable") == "on",
	}
	_, err := ui.transit.CreateKey(r.Context(), &mcv1.TransitCreateKeyRequest{
		Mount: p.Mount, Name: f.Name, Type: f.Type, Derived: f.Derived, Exportable: f.Exportable,
	})
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showTransitKeys(w, r, p, status, f) })
		return
	}
	ui.d.Logger.Info("web: transit key created", "mount", p.Mount, "key", f.Name, "type", f.Type, "exportable", f.Exportable, "by", p.User.Username)
	done(w, r, "Key "+f.Name+" created.", transitKeyPath(p.Mount, f.Name))
}

// transitForm is the fields of the operation forms, each using some.
// Plaintext and Input are text, or base64 when Encoding is "base64"
// (binary data); associated data and context are text, as in
// metacryptctl.
type transitForm struct {
	Plaintext, Input, Encoding, Ciphertext, AssociatedData, Context string
	KeyVersion, Signature, HMAC, Algorithm, Bits                    string
	Prehashed, IncludePlaintext                                     bool
}

func readTransitForm(r *http.Request) transitForm {
	return transitForm{
		Plaintext: r.PostFormValue("plaintext"), Input: r.PostFormValue("input"), Encoding: r.PostFormValue("encoding"),
		Ciphertext: strings.TrimSpace(r.PostFormValue("ciphertext")), AssociatedData: r.PostFormValue("associated_data"),
		Context: r.PostFormValue("context"), KeyVersion: strings.TrimSpace(r.PostFormValue("key_version")),
		Signature: strings.TrimSpace(r.PostFormValue("signature")), HMAC: strings.TrimSpace(r.PostFormValue("hmac")),
		Algorithm: r.PostFormValue("algorithm"), Bits: r.PostFormValue("bits"),
		Prehashed: r.PostFormValue("prehashed") == "on", IncludePlaintext: r.PostFormValue("include_plaintext") == "on",
	}
}

// decode is a text-or-base64 field's bytes.
func (f transitForm) decode(field, v string) ([]byte, error) {
	if f.Encoding != "base64" {
		return []byte(v), nil
	}
	b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(v), ""))
	if err != nil {
		return nil, badField(field, "not standard base64 (%v)", err)
	}
	return b, nil
}

// bytesOf is an optional text field's bytes (nil when empty, which the
// API reads as none).
func bytesOf(v string) []byte {
	if v == "" {
		return nil
	}
	return []byte(v)
}

// optionalInt32 is an optional number field: nil (unchanged) when empty.
func optionalInt32(field, v string) (*int32, error) {
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return nil, badField(field, "want a whole number, got %q", v)
	}
	n32 := int32(n)
	return &n32, nil
}

// version is the key_version field: empty is 0, the latest.
func (f transitForm) version() (int32, error) {
	if f.KeyVersion == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(f.KeyVersion, 10, 32)
	if err != nil {
		return 0, badField("key_version", "want a whole number, got %q", f.KeyVersion)
	}
	return int32(n), nil
}

// shownBytes shows bytes that may be text: as text when they are UTF-8,
// always as base64.
type shownBytes struct {
	Text   string
	IsText bool
	Base64 string
}

func showBytes(b []byte, maybeText bool) *shownBytes {
	return &shownBytes{Text: string(b), IsText: maybeText && utf8.Valid(b), Base64: base64.StdEncoding.EncodeToString(b)}
}

// transitResult is an operation's answer, shown once above the forms.
type transitResult struct {
	// Done says what was done ("Encrypted with version 2").
	Done                        string
	Ciphertext, Signature, HMAC string
	Plaintext                   *shownBytes
	// Verified is set for a verification, whose answer is Valid.
	Verified, Valid bool
}

func transitEncrypt(ctx context.Context, c mcv1.TransitServiceClient, mount, key string, f transitForm) (transitResult, error) {
	pt, err := f.decode("plaintext", f.Plaintext)
	if err != nil {
		return transitResult{}, err
	}
	v, err := f.version()
	if err != nil {
		return transitResult{}, err
	}
	ct, err := c.Encrypt(ctx, &mcv1.TransitEncryptRequest{
		Mount: mount, Key: key, Plaintext: pt, AssociatedData: bytesOf(f.AssociatedData), Context: bytesOf(f.Context), KeyVersion: v,
	})
	if err != nil {
		return transitResult{}, err
	}
	return transitResult{Done: fmt.Sprintf("Encrypted with version %d.", ct.GetKeyVersion()), Ciphertext: ct.GetCiphertext()}, nil
}

func transitDecrypt(ctx context.Context, c mcv1.TransitServiceClient, mount, key string, f transitForm) (transitResult, error) {
	pt, err := c.Decrypt(ctx, &mcv1.TransitDecryptRequest{
		Mount: mount, Key: key, Ciphertext: f.Ciphertext, AssociatedData: bytesOf(f.AssociatedData), Context: bytesOf(f.Context),
	})
	if err != nil {
		return transitResult{}, err
	}
	return transitResult{Done: fmt.Sprintf("Decrypted (version %d).", pt.GetKeyVersion()), Plaintext: showBytes(pt.GetPlaintext(), true)}, nil
}

func transitRewrap(ctx context.Context, c mcv1.TransitServiceClient, mount, key string, f transitForm) (transitResult, error) {
	v, err := f.version()
	if err != nil {
		return transitResult{}, err
	}
	ct, err := c.Rewrap(ctx, &mcv1.TransitRewrapRequest{
		Mount: mount, Key: key, Ciphertext: f.Ciphertext, AssociatedData: bytesOf(f.AssociatedData), Context: bytesOf(f.Context), KeyVersion: v,
	})
	if err != nil {
		return transitResult{}, err
	}
	return transitResult{Done: fmt.Sprintf("Rewrapped to version %d.", ct.GetKeyVersion()), Ciphertext: ct.GetCiphertext()}, nil
}

func transitDataKey(ctx context.Context, c mcv1.TransitServiceClient, mount, key string, f transitForm) (transitResult, error) {
	var bits int64
	if f.Bits != "" {
		var err error
		if bits, err = strconv.ParseInt(f.Bits, 10, 32); err != nil {
			return transitResult{}, badField("bits", "want a whole number, got %q", f.Bits)
		}
	}
	dk, err := c.GenerateDataKey(ctx, &mcv1.TransitDataKeyRequest{
		Mount: mount, Key: key, Bits: int32(bits), IncludePlaintext: f.IncludePlaintext, //nolint:gosec // parsed as 32 bits
		AssociatedData: bytesOf(f.AssociatedData), Context: bytesOf(f.Context),
	})
	if err != nil {
		return transitResult{}, err
	}
	res := transitResult{Done: fmt.Sprintf("Data key made and wrapped with version %d.", dk.GetKeyVersion()), Ciphertext: dk.GetCiphertext()}
	if f.IncludePlaintext {
		res.Plaintext = showBytes(dk.GetPlaintext(), false)
	}
	return res, nil
}

func transitSign(ctx context.Context, c mcv1.TransitServiceClient, mount, key string, f transitForm) (transitResult, error) {
	in, err := f.decode("input", f.Input)
	if err != nil {
		return transitResult{}, err
	}
	v, err := f.version()
	if err != nil {
		return transitResult{}, err
	}
	sig, err := c.Sign(ctx, &mcv1.TransitSignRequest{Mount: mount, Key: key, Input: in, Prehashed: f.Prehashed, KeyVersion: v})
	if err != nil {
		return transitResult{}, err
	}
	return transitResult{Done: fmt.Sprintf("Signed with version %d.", sig.GetKeyVersion()), Signature: sig.GetSignature()}, nil
}

func transitVerify(ctx context.Context, c mcv1.TransitServiceClient, mount, key string, f transitForm) (transitResult, error) {
	in, err := f.decode("input", f.Input)
	if err != nil {
		return transitResult{}, err
	}
	ok, err := c.Verify(ctx, &mcv1.TransitVerifyRequest{Mount: mount, Key: key, Input: in, Prehashed: f.Prehashed, Signature: f.Signature})
	if err != nil {
		return transitResult{}, err
	}
	return transitResult{Done: "Signature checked.", Verified: true, Valid: ok.GetValid()}, nil
}

func transitHMAC(ctx context.Context, c mcv1.TransitServiceClient, mount, key string, f transitForm) (transitResult, error) {
	in, err := f.decode("input", f.Input)
	if err != nil {
		return transitResult{}, err
	}
	v, err := f.version()
	if err != nil {
		return transitResult{}, err
	}
	m, err := c.HMAC(ctx, &mcv1.TransitHMACRequest{Mount: mount, Key: key, Input: in, Algorithm: f.Algorithm, KeyVersion: v})
	if err != nil {
		return transitResult{}, err
	}
	return transitResult{Done: fmt.Sprintf("HMAC computed with version %d.", m.GetKeyVersion()), HMAC: m.GetHmac()}, nil
}

func transitVerifyHMAC(ctx context.Context, c mcv1.TransitServiceClient, mount, key string, f transitForm) (transitResult, error) {
	in, err := f.decode("input", f.Input)
	if err != nil {
		return transitResult{}, err
	}
	ok, err := c.VerifyHMAC(ctx, &mcv1.TransitVerifyHMACRequest{Mount: mount, Key: key, Input: in, Algorithm: f.Algorithm, Hmac: f.HMAC})
	if err != nil {
		return transitResult{}, err
	}
	return transitResult{Done: "HMAC checked.", Verified: true, Valid: ok.GetValid()}, nil
}

// transitConfigForm is the settings form's fields.
type transitConfigForm struct {
	MinDecryptionVersion, MinEncryptionVersion string
	DeletionAllowed                            bool
}

type transitKeyData struct {
	Name string
	// Key is nil when the caller may not read it (KeyDenied says so):
	// the operation forms are still offered, each checked by the API.
	Key       *mcv1.TransitKey
	KeyDenied string
	// What the key's type does, for the forms shown.
	Encrypts, Signs, HMACs bool
	// Op and Form are a refused operation form, shown again as sent;
	// Result is an operation's answer.
	Op     string
	Form   transitForm
	Result *transitResult
	Config transitConfigForm
	Bits   []string
}

// FormFor is the fields of op's form: those sent when op was the last
// form, else the defaults.
func (d transitKeyData) FormFor(op string) transitForm {
	if d.Op == op {
		return d.Form
	}
	return transitForm{Encoding: "text", Algorithm: "sha2-256", Bits: "256"}
}

func (ui *UI) transitKeyPage(w http.ResponseWriter, r *http.Request, p *page) {
	ui.showTransitKey(w, r, p, http.StatusOK, transitKeyData{})
}

// showTransitKey shows a key (read on "key/<name>") with its settings
// form and the operation forms its type allows.
func (ui *UI) showTransitKey(w http.ResponseWriter, r *http.Request, p *page, status int, d transitKeyData) {
	d.Name, d.Bits = r.PathValue("name"), []string{"256", "128", "512"}
	resp, err := ui.transit.GetKey(r.Context(), &mcv1.TransitKeyRequest{Mount: p.Mount, Name: d.Name})
	if err != nil {
		msg, ok := listDenied(err)
		if !ok {
			ui.fail(w, r, p, err)
			return
		}
		d.KeyDenied, d.Encrypts, d.Signs, d.HMACs = msg, true, true, true
	} else {
		k := resp.GetKey()
		t := transit.KeyType(k.GetType())
		d.Key, d.Encrypts, d.Signs, d.HMACs = k, t.Encrypts(), t.Signs(), t.HMACs()
		if d.Config == (transitConfigForm{}) {
			d.Config = transitConfigForm{
				MinDecryptionVersion: strconv.Itoa(int(k.GetMinDecryptionVersion())),
				MinEncryptionVersion: strconv.Itoa(int(k.GetMinEncryptionVersion())), DeletionAllowed: k.GetDeletionAllowed(),
			}
		}
	}
	p.Nav, p.Data = "transit-keys", d
	ui.show(w, status, "transit_key", p)
}

// transitOp runs one operation form; its answer is the key page with the
// result, or with the refusal and the form as it was sent.
func (ui *UI) transitOp(op string) handler {
	do := transitOps[op]
	return func(w http.ResponseWriter, r *http.Request, p *page) {
		d := transitKeyData{Op: op, Form: readTransitForm(r)}
		res, err := do(r.Context(), ui.transit, p.Mount, r.PathValue("name"), d.Form)
		if err != nil {
			ui.formError(w, r, p, err, func(status int) { ui.showTransitKey(w, r, p, status, d) })
			return
		}
		// The forms start afresh: what was sent is not shown again.
		ui.showTransitKey(w, r, p, http.StatusOK, transitKeyData{Result: &res})
	}
}

func (ui *UI) rotateTransitKey(w http.ResponseWriter, r *http.Request, p *page) {
	name := r.PathValue("name")
	resp, err := ui.transit.RotateKey(r.Context(), &mcv1.TransitKeyRequest{Mount: p.Mount, Name: name})
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showTransitKey(w, r, p, status, transitKeyData{}) })
		return
	}
	v := resp.GetKey().GetLatestVersion()
	ui.d.Logger.Info("web: transit key rotated", "mount", p.Mount, "key", name, "version", v, "by", p.User.Username)
	done(w, r, fmt.Sprintf("Key %s rotated: new requests use version %d.", name, v), transitKeyPath(p.Mount, name))
}

// configTransitKey sets the key's minimum versions and whether it may be
// deleted (manage).
func (ui *UI) configTransitKey(w http.ResponseWriter, r *http.Request, p *page) {
	name := r.PathValue("name")
	f := transitConfigForm{
		MinDecryptionVersion: strings.TrimSpace(r.PostFormValue("min_decryption_version")),
		MinEncryptionVersion: strings.TrimSpace(r.PostFormValue("min_encryption_version")),
		DeletionAllowed:      r.PostFormValue("deletion_allowed") == "on",
	}
	req := &mcv1.TransitKeyConfigRequest{Mount: p.Mount, Name: name, DeletionAllowed: &f.DeletionAllowed}
	var err error
	if req.MinDecryptionVersion, err = optionalInt32("min_decryption_version", f.MinDecryptionVersion); err == nil {
		req.MinEncryptionVersion, err = optionalInt32("min_encryption_version", f.MinEncryptionVersion)
	}
	if err == nil {
		_, err = ui.transit.UpdateKeyConfig(r.Context(), req)
	}
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showTransitKey(w, r, p, status, transitKeyData{Config: f}) })
		return
	}
	ui.d.Logger.Info("web: transit key configured", "mount", p.Mount, "key", name,
		"min_decryption_version", f.MinDecryptionVersion, "min_encryption_version", f.MinEncryptionVersion,
		"deletion_allowed", f.DeletionAllowed, "by", p.User.Username)
	done(w, r, "Key "+name+" updated.", transitKeyPath(p.Mount, name))
}

// deleteTransitKey deletes a key whose deletion_allowed is set (manage);
// whatever it encrypted is lost.
func (ui *UI) deleteTransitKey(w http.ResponseWriter, r *http.Request, p *page) {
	name := r.PathValue("name")
	if _, err := ui.transit.DeleteKey(r.Context(), &mcv1.TransitKeyRequest{Mount: p.Mount, Name: name}); err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showTransitKey(w, r, p, status, transitKeyData{}) })
		return
	}
	ui.d.Logger.Info("web: transit key deleted", "mount", p.Mount, "key", name, "by", p.User.Username)
	done(w, r, "Key "+name+" deleted.", mountPath(engineTransit, p.Mount))
}
