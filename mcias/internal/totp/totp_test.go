package totp_test

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcias/internal/totp"
)

// rfcSecret is the RFC 6238 Appendix B SHA-1 seed "12345678901234567890".
var rfcSecret = base32.StdEncoding.EncodeToString([]byte("12345678901234567890"))

func TestCodeRFC6238(t *testing.T) {
	// Appendix B lists 8-digit values; a 6-digit code is their last six.
	tests := []struct {
		unix int64
		rfc  string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	}
	for _, tt := range tests {
		t.Run(tt.rfc, func(t *testing.T) {
			got, err := totp.Code(rfcSecret, time.Unix(tt.unix, 0))
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.rfc[2:]; got != want {
				t.Fatalf("Code at %d = %s, want %s", tt.unix, got, want)
			}
		})
	}
}

func TestSecretForms(t *testing.T) {
	at := time.Unix(1111111109, 0)
	spaced := strings.Join(regexp.MustCompile(`.{4}`).FindAllString(rfcSecret, -1), " ")
	tests := []struct {
		name, secret string
		ok           bool
	}{
		{"canonical", rfcSecret, true},
		{"lower case", strings.ToLower(rfcSecret), true},
		{"spaced groups", spaced, true},
		{"lower case spaced", strings.ToLower(spaced), true},
		{"padded", rfcSecret + "====", true},
		{"empty", "", false},
		{"not base32", "GEZDGNBVGY3TQOJQ!EZDGNBVGY3TQOJQ", false},
		{"digits outside base32", "GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJ0", false},
		{"80-bit secret is too short", base32.StdEncoding.EncodeToString([]byte("1234567890")), false},
	}
	want, err := totp.Code(rfcSecret, at)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := totp.Code(tt.secret, at)
			if !tt.ok {
				if err == nil {
					t.Fatalf("Code accepted secret %q", tt.secret)
				}
				return
			}
			if err != nil {
				t.Fatalf("Code: %v", err)
			}
			if got != want {
				t.Fatalf("Code = %s, want %s", got, want)
			}
		})
	}
}

func TestPaddedSecret(t *testing.T) {
	// 16 bytes need padding in base32; both spellings are the same secret.
	padded := base32.StdEncoding.EncodeToString([]byte("1234567890123456"))
	if !strings.HasSuffix(padded, "=") {
		t.Fatalf("%q is not padded", padded)
	}
	at := time.Unix(1111111109, 0)
	a, errA := totp.Code(padded, at)
	b, errB := totp.Code(strings.TrimRight(padded, "="), at)
	if errA != nil || errB != nil || a != b {
		t.Fatalf("padded %q, %v; unpadded %q, %v", a, errA, b, errB)
	}
}

func TestStep(t *testing.T) {
	tests := []struct {
		unix int64
		want int64
	}{
		{0, 0}, {29, 0}, {30, 1}, {59, 1}, {1111111109, 37037036}, {-1, -1}, {-30, -1}, {-31, -2},
	}
	for _, tt := range tests {
		if got := totp.Step(time.Unix(tt.unix, 0)); got != tt.want {
			t.Errorf("Step(%d) = %d, want %d", tt.unix, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	now := time.Unix(1772366400, 0) // a step boundary
	step := totp.Step(now)
	codeAt := func(offset int64) string {
		c, err := totp.Code(rfcSecret, now.Add(time.Duration(offset)*totp.Period))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	wrong := func() string {
		c := []byte(codeAt(0))
		c[0] = '0' + (c[0]-'0'+1)%10
		return string(c)
	}()

	tests := []struct {
		name     string
		secret   string
		code     string
		lastStep int64
		wantStep int64
		ok       bool
	}{
		{"current step", rfcSecret, codeAt(0), 0, step, true},
		{"previous step", rfcSecret, codeAt(-1), 0, step - 1, true},
		{"next step", rfcSecret, codeAt(1), 0, step + 1, true},
		{"two steps back", rfcSecret, codeAt(-2), 0, 0, false},
		{"two steps ahead", rfcSecret, codeAt(2), 0, 0, false},
		{"wrong code", rfcSecret, wrong, 0, 0, false},
		{"replay of the same step", rfcSecret, codeAt(0), step, 0, false},
		{"older code after a newer one", rfcSecret, codeAt(-1), step, 0, false},
		{"anything after next step used", rfcSecret, codeAt(0), step + 1, 0, false},
		{"next step after current used", rfcSecret, codeAt(1), step, step + 1, true},
		{"current after previous used", rfcSecret, codeAt(0), step - 1, step, true},
		{"lower-case secret", strings.ToLower(rfcSecret), codeAt(0), 0, step, true},
		{"bad secret", "!!!", codeAt(0), 0, 0, false},
		{"five digits", rfcSecret, codeAt(0)[:5], 0, 0, false},
		{"seven digits", rfcSecret, codeAt(0) + "0", 0, 0, false},
		{"spaces", rfcSecret, codeAt(0)[:3] + " " + codeAt(0)[3:], 0, 0, false},
		{"letters", rfcSecret, "12a456", 0, 0, false},
		{"unicode digits", rfcSecret, "١٢٣٤٥٦", 0, 0, false},
		{"empty", rfcSecret, "", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotStep, ok := totp.Validate(tt.secret, tt.code, now, tt.lastStep)
			if ok != tt.ok || gotStep != tt.wantStep {
				t.Fatalf("Validate(%q, last %d) = %d, %v; want %d, %v", tt.code, tt.lastStep-step, gotStep, ok, tt.wantStep, tt.ok)
			}
		})
	}
}

func TestValidateOnce(t *testing.T) {
	now := time.Now()
	secret, err := totp.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.Code(secret, now)
	if err != nil {
		t.Fatal(err)
	}
	last, ok := totp.Validate(secret, code, now, 0)
	if !ok {
		t.Fatal("first use refused")
	}
	if _, ok := totp.Validate(secret, code, now, last); ok {
		t.Fatal("second use accepted")
	}
}

func TestGenerateSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		s, err := totp.GenerateSecret()
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[A-Z2-7]{32}$`).MatchString(s) || seen[s] {
			t.Fatalf("bad or repeated secret %q", s)
		}
		seen[s] = true
		if b, err := base32.StdEncoding.DecodeString(s); err != nil || len(b) != 20 {
			t.Fatalf("secret %q decodes to %d bytes, %v", s, len(b), err)
		}
		if _, err := totp.Code(s, time.Now()); err != nil {
			t.Fatalf("Code with a generated secret: %v", err)
		}
	}
}

func TestURI(t *testing.T) {
	tests := []struct {
		name, secret, issuer, account string
		wantPath                      string
	}{
		{"plain", rfcSecret, "Metacircular", "kyle", "/Metacircular:kyle"},
		{"spaces and symbols", strings.ToLower(rfcSecret) + "====", "Metacircular Lab", "kyle@example.net", "/Metacircular Lab:kyle@example.net"},
		{"reserved characters", rfcSecret, "A&B=C?", "x/y#z", "/A&B=C?:x/y#z"},
		{"no issuer", rfcSecret, "", "kyle", "/kyle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := totp.URI(tt.secret, tt.issuer, tt.account)
			if strings.Contains(raw, " ") || strings.Contains(raw, "+") {
				t.Errorf("URI %q has an unescaped space or a +", raw)
			}
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("url.Parse(%q): %v", raw, err)
			}
			if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != tt.wantPath {
				t.Fatalf("URI %q: scheme %q host %q path %q", raw, u.Scheme, u.Host, u.Path)
			}
			q := u.Query()
			want := url.Values{
				"secret": {rfcSecret}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"},
			}
			if tt.issuer != "" {
				want["issuer"] = []string{tt.issuer}
			}
			if len(q) != len(want) {
				t.Errorf("URI %q: parameters %v, want %v", raw, q, want)
			}
			for k, v := range want {
				if q.Get(k) != v[0] || len(q[k]) != 1 {
					t.Errorf("URI %q: %s = %q, want %q", raw, k, q[k], v[0])
				}
			}
		})
	}
}

func TestGenerateRecoveryCodes(t *testing.T) {
	format := regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$`)
	seen := map[string]bool{}
	for _, n := range []int{1, 10, 100} {
		codes, err := totp.GenerateRecoveryCodes(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(codes) != n {
			t.Fatalf("got %d codes, want %d", len(codes), n)
		}
		for _, c := range codes {
			if !format.MatchString(c) {
				t.Fatalf("code %q does not match xxxx-xxxx-xxxx", c)
			}
			if seen[c] {
				t.Fatalf("code %q repeated", c)
			}
			seen[c] = true
			if totp.NormalizeRecoveryCode(c) != strings.ReplaceAll(c, "-", "") {
				t.Fatalf("a generated code changes under normalization: %q", c)
			}
		}
	}
	for _, n := range []int{0, -1, 101} {
		if _, err := totp.GenerateRecoveryCodes(n); err == nil {
			t.Errorf("GenerateRecoveryCodes(%d) succeeded", n)
		}
	}
}

func TestRecoveryCodeNormalizeAndHash(t *testing.T) {
	const code = "7k2m-9qzx-a0b1"
	sum := sha256.Sum256([]byte("7k2m9qzxa0b1"))
	want := hex.EncodeToString(sum[:])
	tests := []struct {
		typed string
		same  bool
	}{
		{code, true},
		{"7K2M-9QZX-A0B1", true},
		{"7k2m 9qzx a0b1", true},
		{" 7k2m9qzxa0b1\n", true},
		{"7k2m--9qzx - a0b1", true},
		{"7k2m-9qzx-aOBl", true}, // O for 0, l for 1
		{"7k2m-9qzx-aob1", true},
		{"7k2m-9qzx-a0bI", true},
		{"7k2m-9qzx-a0b2", false},
		{"7k2m-9qzx-a0b", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.typed, func(t *testing.T) {
			if got := totp.HashRecoveryCode(tt.typed); (got == want) != tt.same {
				t.Fatalf("HashRecoveryCode(%q) = %s; same as %q: %v, want %v", tt.typed, got, code, got == want, tt.same)
			}
		})
	}
	if got := totp.NormalizeRecoveryCode("AB-cd eF\tgh"); got != "abcdefgh" {
		t.Errorf("NormalizeRecoveryCode = %q", got)
	}
}
