package password_test

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcias/internal/password"
)

// fast keeps tests quick: the smallest memory Validate allows, one pass.
var fast = password.Params{Memory: 8 * 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// pinned is "correct horse battery staple" hashed by the Argon2 reference
// implementation (phc-winner-argon2's CLI: echo -n '…' | argon2
// somesaltsomesalt -id -t 1 -k 8192 -p 1 -l 32 -e). Verifying it shows our
// PHC encoding is the standard one, and that hashes stored today keep
// verifying.
const pinned = "$argon2id$v=19$m=8192,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$EstMPFmPwEV1ZKsYgQUv5J+Zg0iQylaykGB5kmbPnSE"

func mustHash(t testing.TB, pw string, p password.Params) string {
	t.Helper()
	h, err := password.Hash(pw, p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHashVerify(t *testing.T) {
	long := strings.Repeat("x", password.MaxLength)
	tests := []struct {
		name, password, attempt string
		want                    bool
	}{
		{"right password", "correct horse battery staple", "correct horse battery staple", true},
		{"wrong password", "correct horse battery staple", "correct horse battery stapler", false},
		{"case matters", "Secret", "secret", false},
		{"prefix", "correct horse", "correct", false},
		{"unicode", "pässwörd ✓", "pässwörd ✓", true},
		{"longest allowed", long, long, true},
		{"attempt too long", long, long + "x", false},
		{"empty attempt", "x", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mustHash(t, tt.password, fast)
			got, err := password.Verify(tt.attempt, h)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHashFormat(t *testing.T) {
	format := regexp.MustCompile(`^\$argon2id\$v=19\$m=8192,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	a, b := mustHash(t, "pw", fast), mustHash(t, "pw", fast)
	if !format.MatchString(a) {
		t.Fatalf("hash %q is not a PHC argon2id string", a)
	}
	if a == b {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
}

func TestHashDefaultParams(t *testing.T) {
	h := mustHash(t, "correct horse battery staple", password.DefaultParams())
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("hash %q does not carry the default parameters", h)
	}
	if ok, err := password.Verify("correct horse battery staple", h); !ok || err != nil {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
	if password.NeedsRehash(h, password.DefaultParams()) {
		t.Fatal("fresh default hash needs a rehash")
	}
}

func TestPinnedHash(t *testing.T) {
	if ok, err := password.Verify("correct horse battery staple", pinned); !ok || err != nil {
		t.Fatalf("Verify(pinned) = %v, %v", ok, err)
	}
}

func TestHashRefuses(t *testing.T) {
	tests := []struct {
		name     string
		password string
		params   password.Params
		want     error // nil: any error
	}{
		{"empty", "", fast, password.ErrEmpty},
		{"too long", strings.Repeat("x", password.MaxLength+1), fast, password.ErrTooLong},
		{"bad params", "pw", password.Params{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := password.Hash(tt.password, tt.params)
			if err == nil || h != "" {
				t.Fatalf("Hash = %q, %v; want an error", h, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Hash error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	good := mustHash(t, "pw", fast)
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=...,t=...,p=..., salt, hash
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	costs := func(c string) string { return with(3, c) }

	tests := []struct{ name, encoded string }{
		{"empty", ""},
		{"plain text", "pw"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", with(1, "argon2i")},
		{"argon2d", with(1, "argon2d")},
		{"variant upper case", with(1, "Argon2id")},
		{"version 16", with(2, "v=16")},
		{"version missing", strings.Replace(good, "$v=19", "", 1)},
		{"version garbage", with(2, "v=19x")},
		{"salt missing", with(4, "")},
		{"hash missing", with(5, "")},
		{"hash field dropped", strings.Join(parts[:5], "$")},
		{"extra field", good + "$AAAA"},
		{"trailing dollar", good + "$"},
		{"no leading dollar", strings.TrimPrefix(good, "$")},
		{"costs reordered", costs("t=1,m=8192,p=1")},
		{"cost missing", costs("m=8192,t=1")},
		{"extra cost", costs("m=8192,t=1,p=1,k=1")},
		{"cost leading zero", costs("m=08192,t=1,p=1")},
		{"cost plus sign", costs("m=+8192,t=1,p=1")},
		{"cost negative", costs("m=8192,t=-1,p=1")},
		{"cost not a number", costs("m=lots,t=1,p=1")},
		{"cost spaces", costs("m=8192, t=1, p=1")},
		{"memory below 8 MiB", costs("m=1,t=1,p=1")},
		{"memory above 4 GiB", costs("m=4194305,t=1,p=1")},
		{"memory overflows uint32", costs("m=99999999999,t=1,p=1")},
		{"iterations zero", costs("m=8192,t=0,p=1")},
		{"iterations absurd", costs("m=8192,t=4000000000,p=1")},
		{"parallelism zero", costs("m=8192,t=1,p=0")},
		{"parallelism above 64", costs("m=8192,t=1,p=65")},
		{"parallelism overflows uint8", costs("m=8192,t=1,p=256")},
		{"salt bad base64", with(4, "!!!!!!!!!!!!!!!!!!!!!!")},
		{"salt padded", with(4, parts[4]+"==")},
		{"salt url alphabet", with(4, "-_"+parts[4][2:])},
		{"salt non-canonical bits", with(4, parts[4][:21]+"B")},
		{"salt too short", with(4, "c2FsdA")},
		{"hash bad base64", with(5, parts[5][:42]+"*")},
		{"hash too short", with(5, "AAAAAAAAAAA")},
		{"hash too long", with(5, strings.Repeat("A", 120))},
		{"newline", strings.Replace(good, parts[5], parts[5][:10]+"\n"+parts[5][10:], 1)},
		{"oversize", good + strings.Repeat("A", 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := password.Verify("pw", tt.encoded)
			if ok || !errors.Is(err, password.ErrMalformedHash) {
				t.Fatalf("Verify(%q) = %v, %v; want false, ErrMalformedHash", tt.encoded, ok, err)
			}
			if !password.NeedsRehash(tt.encoded, fast) {
				t.Fatalf("NeedsRehash(%q) = false for a malformed hash", tt.encoded)
			}
		})
	}
	// The control: the untouched hash verifies, so each case above fails
	// for the one thing it changes.
	if ok, err := password.Verify("pw", good); !ok || err != nil {
		t.Fatalf("control Verify = %v, %v", ok, err)
	}
}

func TestNeedsRehash(t *testing.T) {
	h := mustHash(t, "pw", fast)
	change := func(f func(p *password.Params)) password.Params { p := fast; f(&p); return p }
	tests := []struct {
		name   string
		params password.Params
		want   bool
	}{
		{"same", fast, false},
		{"more memory", change(func(p *password.Params) { p.Memory *= 2 }), true},
		{"more iterations", change(func(p *password.Params) { p.Iterations++ }), true},
		{"more lanes", change(func(p *password.Params) { p.Parallelism++ }), true},
		{"longer salt", change(func(p *password.Params) { p.SaltLength = 32 }), true},
		{"shorter key", change(func(p *password.Params) { p.KeyLength = 16 }), true},
		{"defaults", password.DefaultParams(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := password.NeedsRehash(h, tt.params); got != tt.want {
				t.Fatalf("NeedsRehash = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParamsValidate(t *testing.T) {
	min := password.Params{Memory: 8 * 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 16}
	max := password.Params{Memory: 4 * 1024 * 1024, Iterations: 64, Parallelism: 64, SaltLength: 64, KeyLength: 64}
	change := func(base password.Params, f func(p *password.Params)) password.Params { f(&base); return base }
	tests := []struct {
		name   string
		params password.Params
		ok     bool
	}{
		{"defaults", password.DefaultParams(), true},
		{"lower bounds", min, true},
		{"upper bounds", max, true},
		{"zero", password.Params{}, false},
		{"memory below", change(min, func(p *password.Params) { p.Memory-- }), false},
		{"memory above", change(max, func(p *password.Params) { p.Memory++ }), false},
		{"iterations below", change(min, func(p *password.Params) { p.Iterations-- }), false},
		{"iterations above", change(max, func(p *password.Params) { p.Iterations++ }), false},
		{"parallelism below", change(min, func(p *password.Params) { p.Parallelism-- }), false},
		{"parallelism above", change(max, func(p *password.Params) { p.Parallelism++ }), false},
		{"salt below", change(min, func(p *password.Params) { p.SaltLength-- }), false},
		{"salt above", change(max, func(p *password.Params) { p.SaltLength++ }), false},
		{"key below", change(min, func(p *password.Params) { p.KeyLength-- }), false},
		{"key above", change(max, func(p *password.Params) { p.KeyLength++ }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.params.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate(%+v) = %v, want ok %v", tt.params, err, tt.ok)
			}
		})
	}
}

func TestEqualizerBurn(t *testing.T) {
	e, err := password.NewEqualizer(fast)
	if err != nil {
		t.Fatal(err)
	}
	// Burn has no result to check; it must accept anything a login can send.
	for _, pw := range []string{"", "pw", strings.Repeat("x", password.MaxLength+1)} {
		e.Burn(pw)
	}
	if _, err := password.NewEqualizer(password.Params{}); err == nil {
		t.Fatal("NewEqualizer accepted invalid params")
	}
}

func BenchmarkHashDefault(b *testing.B) {
	p := password.DefaultParams()
	b.Run(fmt.Sprintf("m=%dKiB,t=%d,p=%d", p.Memory, p.Iterations, p.Parallelism), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := password.Hash("correct horse battery staple", p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
