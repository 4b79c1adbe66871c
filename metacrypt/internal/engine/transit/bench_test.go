package transit

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"
)

// The benchmarks measure 1 KiB encrypt+decrypt round trips through the
// typed API (mount lookup, the ACL for a non-admin, the key read from
// in-memory storage, AES-256-GCM) beside the raw AES-GCM rate of
// crypto/aes, the physical limit; bench/metacrypt compares them through
// the network API.

const benchSize = 1024

func BenchmarkEncryptDecrypt1KiB(b *testing.B) {
	f := newFixture(b)
	f.create(b, "bench", AES256GCM96, false, false)
	pt := make([]byte, benchSize)
	_, _ = rand.Read(pt)
	ctx := b.Context()
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		ct, err := f.svc.Encrypt(ctx, app, "transit", EncryptRequest{Key: "bench", Plaintext: pt})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.svc.Decrypt(ctx, app, "transit", DecryptRequest{Key: "bench", Ciphertext: ct.Ciphertext}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncryptDecrypt1KiBBatch100 is the same per item, 100 items a
// request.
func BenchmarkEncryptDecrypt1KiBBatch100(b *testing.B) {
	f := newFixture(b)
	f.create(b, "bench", AES256GCM96, false, false)
	items := make([]EncryptItem, 100)
	for i := range items {
		items[i].Plaintext = make([]byte, benchSize)
		_, _ = rand.Read(items[i].Plaintext)
	}
	ctx := b.Context()
	b.SetBytes(benchSize * int64(len(items)))
	b.ReportAllocs()
	for b.Loop() {
		enc, err := f.svc.EncryptBatch(ctx, app, "transit", EncryptBatchRequest{Key: "bench", Items: items})
		if err != nil {
			b.Fatal(err)
		}
		dec := DecryptBatchRequest{Key: "bench", Items: make([]DecryptItem, len(enc))}
		for i, r := range enc {
			dec.Items[i].Ciphertext = r.Ciphertext
		}
		if _, err := f.svc.DecryptBatch(ctx, app, "transit", dec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAESGCM1KiB is crypto/aes's AES-256-GCM seal and open of 1 KiB
// with a random nonce each time: the limit the engine approaches.
func BenchmarkAESGCM1KiB(b *testing.B) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	pt := make([]byte, benchSize)
	_, _ = rand.Read(pt)
	nonce := make([]byte, a.NonceSize())
	buf := make([]byte, 0, benchSize+a.Overhead())
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = rand.Read(nonce)
		ct := a.Seal(buf[:0], nonce, pt, nil)
		if _, err := a.Open(ct[:0], nonce, ct, nil); err != nil {
			b.Fatal(err)
		}
	}
}
