package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/auth/authtest"
)

func TestCacheStoresOnlyTheDigest(t *testing.T) {
	srv := authtest.New(t)
	srv.AddUser(authtest.User{Username: "svc", AccountType: AccountSystem})
	tok := srv.Token("svc")
	c, err := New(srv.Config("x"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ValidateToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cache[sha256.Sum256([]byte(tok))]; !ok || len(c.cache) != 1 {
		t.Fatalf("cache not keyed by SHA-256 of the token: %d entries", len(c.cache))
	}
	if dump := fmt.Sprintf("%+v", c.cache); strings.Contains(dump, tok) || strings.Contains(dump, fmt.Sprintf("%x", tok)) {
		t.Fatal("raw token found in the cache")
	}
}
