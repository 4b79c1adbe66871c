package sshca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// FuzzParsePublicKey feeds arbitrary text to the public key input of
// sign and revoke. Nothing panics; what is accepted is one plain key of a
// supported type, which encodes back to a key that parses the same.
func FuzzParsePublicKey(f *testing.F) {
	_, ed := newKey(f)
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ed)
	f.Add(strings.TrimSpace(ed) + " alice@laptop\n")
	f.Add(authorized(f, ec.Public()))
	f.Add(rsaKey(f, 1024))
	f.Add("no-pty " + ed)
	f.Add(ed + ed)
	f.Add("ssh-dss AAAAB3NzaC1kc3MAAACBAP")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := parsePublicKey("public_key", s)
		if err != nil {
			return
		}
		if _, ok := pub.(*ssh.Certificate); ok || !slices.Contains(KeyTypes, pub.Type()) {
			t.Fatalf("accepted %s", pub.Type())
		}
		again, err := parsePublicKey("public_key", string(ssh.MarshalAuthorizedKey(pub)))
		if err != nil || string(again.Marshal()) != string(pub.Marshal()) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
