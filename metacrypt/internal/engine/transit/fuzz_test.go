package transit

import (
	"bytes"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

// FuzzCiphertext feeds arbitrary strings to the ciphertext parser and to
// decryption with a real key. Nothing panics; what parses writes back
// identically (one spelling per value); decryption of anything but the
// genuine ciphertexts fails with a bad-input or version error naming the
// ciphertext.
func FuzzCiphertext(f *testing.F) {
	v1, err := newVersion(AES256GCM96, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	v2, err := newVersion(AES256GCM96, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	k := &keyRecord{Name: "k", Type: AES256GCM96, MinDecryptionVersion: 2, Versions: []keyVersion{v1, v2, v2}}
	genuine, err := k.encrypt("", 3, EncryptItem{Plaintext: []byte("seed")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(genuine.Ciphertext)
	f.Add(Format(1, bytes.Repeat([]byte{7}, 40)))
	f.Add(Format(4, nil))
	f.Add("metacrypt:v01:AAAA")
	f.Add("metacrypt:v2:AAAA=")
	f.Add("metacrypt:v-1:AAAA")
	f.Add("metacrypt:v99999999999999999999:")
	f.Add("vault:v1:AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		n, raw, err := Parse("ciphertext", s)
		if err == nil && Format(n, raw) != s {
			t.Fatalf("%q parses as v%d %x, which writes as %q", s, n, raw, Format(n, raw))
		}
		p, err := k.decrypt("", DecryptItem{Ciphertext: s})
		if err == nil {
			if s != genuine.Ciphertext || string(p.Plaintext) != "seed" {
				t.Fatalf("%q decrypted to %q", s, p.Plaintext)
			}
			return
		}
		if d := apierr.Describe(err); (d.Kind != apierr.Invalid && d.Kind != apierr.Precondition) || d.Field != "ciphertext" {
			t.Fatalf("%q: %+v", s, d)
		}
	})
}
