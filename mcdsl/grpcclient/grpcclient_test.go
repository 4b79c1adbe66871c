package grpcclient_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcdsl/auth/authtest"
	mcdslv1 "git.metacircular.net/metacircular/mcdsl/gen/mcdsl/v1"
	"git.metacircular.net/metacircular/mcdsl/grpcclient"
	"git.metacircular.net/metacircular/mcdsl/grpcserver"
	"git.metacircular.net/metacircular/mcdsl/tlsutil/tlstest"
)

// snapshots answers with the caller's name as the path.
type snapshots struct {
	mcdslv1.UnimplementedSnapshotServiceServer
}

func (snapshots) Snapshot(ctx context.Context, _ *mcdslv1.SnapshotRequest) (*mcdslv1.SnapshotResponse, error) {
	if id, ok := auth.IdentityFrom(ctx); ok {
		return &mcdslv1.SnapshotResponse{Path: id.Username}, nil
	}
	return nil, apierr.InvalidField("path", "no caller")
}

const method = "/mcdsl.v1.SnapshotService/Snapshot"

func TestCheckAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"mcias.svc.mcp.test:9443": true, "127.0.0.1:1": true, "[::1]:9443": true,
		"": false, "https://mcias:9443": false, "mcias": false, ":9443": false,
	} {
		if err := grpcclient.CheckAddr(addr); (err == nil) != ok {
			t.Errorf("CheckAddr(%q) = %v", addr, err)
		}
	}
}

func TestTLSWithToken(t *testing.T) {
	mcias := authtest.New(t)
	mcias.AddUser(authtest.User{Username: "alice", Roles: []string{"user"}})
	v, err := auth.New(mcias.Config("test"), auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pki := tlstest.New(t)
	pair := pki.Issue(t, "grpc", "127.0.0.1")
	srv, err := grpcserver.New(grpcserver.Options{TLSCert: pair.CertFile, TLSKey: pair.KeyFile, Validator: v,
		Maps: grpcserver.MethodMaps{AuthRequired: map[string]bool{method: true}}})
	if err != nil {
		t.Fatal(err)
	}
	mcdslv1.RegisterSnapshotServiceServer(srv, snapshots{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Serve(ctx, ln) }()
	conn, err := grpcclient.Dial("test", ln.Addr().String(), pki.CAFile, "")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	c := mcdslv1.NewSnapshotServiceClient(conn)
	_, err = c.Snapshot(ctx, &mcdslv1.SnapshotRequest{})
	if err = conn.Err(err); apierr.KindOf(err) != apierr.Unauthenticated || err.Error() != "test: authentication required" {
		t.Fatalf("no token: %v (kind %v)", err, apierr.KindOf(err))
	}
	conn.SetToken(mcias.Token("alice"))
	resp, err := c.Snapshot(ctx, &mcdslv1.SnapshotRequest{})
	if err != nil || resp.GetPath() != "alice" {
		t.Fatalf("with token: %v %v", resp, err)
	}
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	srv, err := grpcserver.New(grpcserver.Options{Socket: sock, Maps: grpcserver.MethodMaps{Public: map[string]bool{method: true}}})
	if err != nil {
		t.Fatal(err)
	}
	mcdslv1.RegisterSnapshotServiceServer(srv, snapshots{})
	ln, err := srv.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	if _, err := srv.Listen(context.Background()); err == nil {
		t.Fatal("a second server took over a live socket")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Serve(ctx, ln) }()
	conn, err := grpcclient.DialUnix("admin", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_, err = mcdslv1.NewSnapshotServiceClient(conn).Snapshot(ctx, &mcdslv1.SnapshotRequest{})
	st := apierr.Describe(conn.Err(err))
	if st.Kind != apierr.Invalid || st.Field != "path" || status.Code(err) != codes.InvalidArgument {
		t.Fatalf("error over the socket: %v %+v", err, st)
	}
	// Socket servers cannot check tokens, so they refuse methods that need one.
	_, err = grpcserver.New(grpcserver.Options{Socket: sock + "2", Validator: refuseAll{},
		Maps: grpcserver.MethodMaps{AdminRequired: map[string]bool{method: true}}})
	if err == nil || !strings.Contains(err.Error(), "Unix socket") {
		t.Errorf("a socket server with an admin-only method: %v", err)
	}
}

type refuseAll struct{}

func (refuseAll) ValidateToken(context.Context, string) (*auth.Identity, error) {
	return nil, auth.ErrInvalidToken
}
