package webui

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

func TestOptionLines(t *testing.T) {
	got, err := optionLines("critical_options", "source-address = 10.0.0.0/8,192.168.0.0/16\r\n\r\n  force-command=/usr/bin/backup --all  \n")
	want := map[string]string{"source-address": "10.0.0.0/8,192.168.0.0/16", "force-command": "/usr/bin/backup --all"}
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("optionLines = %v %v, want %v", got, err, want)
	}
	if got, err := optionLines("critical_options", " \n\n"); err != nil || got != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
	for _, bad := range []string{"source-address", "=value", "a=b\nno-equals"} {
		_, err := optionLines("critical_options", bad)
		s := apierr.FromGRPC(err)
		if s.Kind != apierr.Invalid || s.Field != "critical_options" || !strings.Contains(s.Message, "name=value") {
			t.Errorf("optionLines(%q): %+v", bad, s)
		}
	}
}

func TestBadFieldIsTheAPIs400(t *testing.T) {
	s := apierr.FromGRPC(badField("key_version", "want a whole number, got %q", "x"))
	if s.Kind != apierr.Invalid || s.HTTPStatus() != 400 || s.Field != "key_version" || s.Message != `key_version: want a whole number, got "x"` {
		t.Fatalf("badField: %+v", s)
	}
}

func TestListDenied(t *testing.T) {
	denied := apierr.GRPC(nil, apierr.New(apierr.Denied, "permission denied: gina may not read keys"))
	if msg, ok := listDenied(denied); !ok || msg != "permission denied: gina may not read keys (403 Forbidden)" {
		t.Fatalf("denied: %q %v", msg, ok)
	}
	for _, k := range []apierr.Kind{apierr.Unavailable, apierr.NotFound, apierr.Invalid, apierr.Unauthenticated} {
		if _, ok := listDenied(apierr.GRPC(nil, apierr.New(k, "x"))); ok {
			t.Errorf("%v taken for a denial", k)
		}
	}
}

func TestPaging(t *testing.T) {
	all := make([]int, 120)
	for i := range all {
		all[i] = i
	}
	rows, next, truncated := paged(all[:51], 0)
	if len(rows) != 50 || !next || truncated {
		t.Fatalf("page 0 of 51: %d rows, next %v, truncated %v", len(rows), next, truncated)
	}
	rows, next, _ = paged(all[:50], 0)
	if len(rows) != 50 || next {
		t.Fatalf("page 0 of 50: %d rows, next %v", len(rows), next)
	}
	rows, next, _ = paged(all[:101], 1)
	if len(rows) != 50 || rows[0] != 50 || !next {
		t.Fatalf("page 1 of 101: %v, next %v", rows, next)
	}
	if rows, _, _ := paged(all[:10], 3); rows != nil {
		t.Fatalf("a page past the end: %v", rows)
	}
	last := maxList/pageSize - 1
	big := make([]int, maxList)
	rows, next, truncated = paged(big, last)
	if len(rows) != pageSize || next || !truncated {
		t.Fatalf("last page of %d: %d rows, next %v, truncated %v", maxList, len(rows), next, truncated)
	}
	if pageLimit(0) != pageSize+1 || pageLimit(last) != maxList {
		t.Fatalf("limits %d %d", pageLimit(0), pageLimit(last))
	}
	for in, want := range map[string]int{"": 0, "3": 3, "-1": 0, "x": 0, strconv.Itoa(maxList / pageSize): 0, strconv.Itoa(last): last} {
		if got := pageParam(url.Values{"page": {in}}); got != want {
			t.Errorf("pageParam(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestTransitFormFields(t *testing.T) {
	f := transitForm{Encoding: "base64"}
	if b, err := f.decode("input", " /wAB\r\nAg== "); err != nil || string(b) != "\xff\x00\x01\x02" {
		t.Fatalf("base64 with line breaks: %q %v", b, err)
	}
	if _, err := f.decode("input", "not base64!"); apierr.FromGRPC(err).Field != "input" {
		t.Fatalf("bad base64: %v", err)
	}
	if b, err := (transitForm{Encoding: "text"}).decode("plaintext", "héllo"); err != nil || string(b) != "héllo" {
		t.Fatalf("text: %q %v", b, err)
	}
	for in, want := range map[string]int32{"": 0, "3": 3} {
		if v, err := (transitForm{KeyVersion: in}).version(); err != nil || v != want {
			t.Errorf("version(%q) = %d %v", in, v, err)
		}
	}
	for _, bad := range []string{"latest", "1.5", "99999999999"} {
		if _, err := (transitForm{KeyVersion: bad}).version(); apierr.FromGRPC(err).Field != "key_version" {
			t.Errorf("version(%q): %v", bad, err)
		}
	}
	if p, err := optionalInt32("min_decryption_version", ""); p != nil || err != nil {
		t.Fatalf("empty optional: %v %v", p, err)
	}
	if p, err := optionalInt32("min_decryption_version", "2"); err != nil || p == nil || *p != 2 {
		t.Fatalf("optional 2: %v %v", p, err)
	}
	if _, err := optionalInt32("min_decryption_version", "two"); apierr.FromGRPC(err).Field != "min_decryption_version" {
		t.Fatalf("optional two: %v", err)
	}
	if bytesOf("") != nil || string(bytesOf("ad")) != "ad" {
		t.Fatal("bytesOf")
	}
	d := transitKeyData{Op: "decrypt", Form: transitForm{Ciphertext: "metacrypt:v1:x"}}
	if d.FormFor("decrypt").Ciphertext != "metacrypt:v1:x" || d.FormFor("encrypt").Ciphertext != "" || d.FormFor("encrypt").Encoding != "text" {
		t.Fatal("FormFor mixes the forms")
	}
}

func TestShowBytes(t *testing.T) {
	if s := showBytes([]byte("hi"), true); !s.IsText || s.Text != "hi" || s.Base64 != "aGk=" {
		t.Fatalf("text: %+v", s)
	}
	if s := showBytes([]byte{0xff, 0xfe}, true); s.IsText || s.Base64 != "//4=" {
		t.Fatalf("binary: %+v", s)
	}
	if s := showBytes([]byte("hi"), false); s.IsText {
		t.Fatalf("a data key shown as text: %+v", s)
	}
}

func TestCertFileName(t *testing.T) {
	for kt, want := range map[string]string{
		"ssh-ed25519": "id_ed25519-cert.pub", "ecdsa-sha2-nistp256": "id_ecdsa-cert.pub", "ecdsa-sha2-nistp521": "id_ecdsa-cert.pub",
		"ssh-rsa": "id_rsa-cert.pub", "sk-ssh-ed25519@openssh.com": "id_ed25519_sk-cert.pub",
		"sk-ecdsa-sha2-nistp256@openssh.com": "id_ecdsa_sk-cert.pub", "": "ssh-cert.pub",
	} {
		if got := certFileName(kt); got != want {
			t.Errorf("certFileName(%q) = %q, want %q", kt, got, want)
		}
	}
}

func TestMountPathAndPairs(t *testing.T) {
	for _, tc := range []struct{ engine, mount, want string }{
		{"ca", "pki", "/mounts/pki"}, {"ssh", "ssh", "/ssh/ssh"}, {"transit", "t-1", "/transit/t-1"}, {"u2u", "m", "/u2u/m"}, {"kv", "x", ""},
	} {
		if got := mountPath(tc.engine, tc.mount); got != tc.want {
			t.Errorf("mountPath(%s, %s) = %q, want %q", tc.engine, tc.mount, got, tc.want)
		}
	}
	if got := pairs(map[string]string{"source-address": "10.0.0.0/8", "force-command": "/bin/true"}); got != "force-command=/bin/true\nsource-address=10.0.0.0/8" {
		t.Fatalf("pairs = %q", got)
	}
	if slices.Contains(transitKeyTypes, "") || len(transitKeyTypes) == 0 {
		t.Fatalf("transit key types %q", transitKeyTypes)
	}
}

// TestEngineRoutesAreExact: paths under the engines' prefixes that are
// not routes are the API's JSON 404, as elsewhere in the UI.
func TestEngineRoutesAreExact(t *testing.T) {
	ui, err := New(Deps{CSRFKey: make([]byte, 32), SSO: SSO{MCIASURL: "https://mcias.test", ClientID: "metacrypt", RedirectURI: "https://metacrypt.test/sso/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/ssh/ssh/nope"}, {"GET", "/ssh/ssh/"}, {"POST", "/ssh/ssh/certs"}, {"GET", "/ssh/ssh/certs/1/revoke"},
		{"POST", "/transit/t/keys/k/frobnicate"}, {"GET", "/transit/t/keys/k/encrypt"}, {"POST", "/transit/t/keys/k/export"},
		{"GET", "/u2u/m/open"}, {"POST", "/u2u/m/keys/delete"}, {"GET", "/u2u"},
	} {
		rec := httptest.NewRecorder()
		ui.ServeHTTP(rec, httptest.NewRequest(tc.method, "https://metacrypt.test"+tc.path, nil))
		if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}
