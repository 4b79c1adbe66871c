package server

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/metacrypt/internal/store"
)

type refuseAll struct{}

func (refuseAll) ValidateToken(context.Context, string) (*auth.Identity, error) {
	return nil, errors.New("no")
}

// TestMethodMapsCoverEveryRPC checks every registered RPC is in a method
// map (an unlisted one would be denied, and the service refuses to
// start), and that the open face is exactly Status and Unseal.
func TestMethodMapsCoverEveryRPC(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "m.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	maps := methodMaps()
	srv, err := grpcserver.New(grpcserver.Options{Service: ServiceName, Maps: maps, Validator: refuseAll{}, Sealed: func() bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	register(srv, &app{}, st)
	if u := srv.Unregistered(); len(u) > 0 {
		t.Fatalf("RPCs in no method map: %v", u)
	}
	if len(maps.Public) != 2 {
		t.Fatalf("public methods: %v", maps.Public)
	}
}
