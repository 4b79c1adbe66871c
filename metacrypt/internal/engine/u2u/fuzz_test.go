package u2u

import (
	"bytes"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

// FuzzMessage feeds arbitrary bytes to the message parser and to Open as
// bob. Nothing panics; what parses writes back to the same header bytes;
// only the genuine message opens, and everything else is refused as bad
// input or as addressed to someone else.
func FuzzMessage(f *testing.F) {
	fx := newFixture(f)
	genuine := fx.send(f, alice, "bob", "seed", "")
	f.Add(genuine.Message)
	f.Add(fx.send(f, carol, "alice", "x", "").Message)
	f.Add([]byte{FormatV1})
	f.Add([]byte{FormatV1, 0, 5, 'a', 'l', 'i', 'c', 'e', 0, 0, 0, 1, 0, 3, 'b', 'o', 'b', 0, 0, 0, 9})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, m []byte) {
		h, hb, ct, err := parseMessage(m)
		if err == nil {
			if !bytes.Equal(h.marshal(), hb) || len(hb)+len(ct) != len(m) {
				t.Fatalf("header %+v does not write back", h)
			}
		}
		o, err := fx.svc.Open(t.Context(), bob, "u2u", OpenRequest{Message: m})
		if err == nil {
			if !bytes.Equal(m, genuine.Message) || string(o.Plaintext) != "seed" {
				t.Fatalf("opened a message bob was not sent: %+v", o)
			}
			return
		}
		if d := apierr.Describe(err); (d.Kind != apierr.Invalid && d.Kind != apierr.Denied) || d.Field != "message" {
			t.Fatalf("%+v", d)
		}
	})
}
