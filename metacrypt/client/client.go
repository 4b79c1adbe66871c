// Package client is the public Go client for Metacrypt over gRPC
// (metacrypt.v1): the barrier (status, init, unseal, seal, password,
// rotation), mounts, the CA engine (issuers, issue, sign, renew, revoke,
// search, CRLs), the SSH CA (ssh.go), transit (transit.go) and
// user-to-user (u2u.go) engines, the policy, the generic engine request
// and the ACME server's External Account Binding credentials. metacryptctl
// is built on it; the MCP agent uses it to get certificates. Tokens are
// MCIAS tokens: log in to MCIAS (mcias/client or mcdsl/auth) and pass the
// token here. It imports only the generated code and mcdsl, never
// Metacrypt's internals.
package client

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/grpcclient"
	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
)

// KindOf is the kind of a failed call's error (apierr.Unavailable while
// sealed, apierr.Denied, apierr.Invalid, ...).
func KindOf(err error) apierr.Kind { return apierr.KindOf(err) }

// Client calls one Metacrypt server.
type Client struct {
	conn    *grpcclient.Conn
	sys     mcv1.SysServiceClient
	policy  mcv1.PolicyServiceClient
	ca      mcv1.CAServiceClient
	engine  mcv1.EngineServiceClient
	acme    mcv1.ACMEServiceClient
	ssh     mcv1.SSHServiceClient
	transit mcv1.TransitServiceClient
	u2u     mcv1.U2UServiceClient
}

// New returns a client for Metacrypt's gRPC address (host:port) trusting
// caFile (or the system roots when empty); token may be empty for Status
// and Unseal, or until SetToken. It connects on the first call.
func New(addr, caFile, token string) (*Client, error) {
	conn, err := grpcclient.Dial("metacrypt", addr, caFile, token)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn: conn, sys: mcv1.NewSysServiceClient(conn), policy: mcv1.NewPolicyServiceClient(conn),
		ca: mcv1.NewCAServiceClient(conn), engine: mcv1.NewEngineServiceClient(conn), acme: mcv1.NewACMEServiceClient(conn),
		ssh: mcv1.NewSSHServiceClient(conn), transit: mcv1.NewTransitServiceClient(conn), u2u: mcv1.NewU2UServiceClient(conn),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// SetToken sets the bearer token used for authenticated calls.
func (c *Client) SetToken(tok string) { c.conn.SetToken(tok) }

// FormatDuration writes a duration as Metacrypt reads it: whole days as
// "90d", anything else in Go syntax; zero is "" (the server's default).
func FormatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return ""
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// Status is the barrier's state.
type Status struct {
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	KeyVersion  int64  `json:"key_version"`
	Version     string `json:"version"`
	// UnsealRetryAfter is how long unseal attempts are refused now.
	UnsealRetryAfter time.Duration `json:"unseal_retry_after"`
}

func statusOf(s *mcv1.StatusResponse) Status {
	return Status{
		Initialized: s.GetInitialized(), Sealed: s.GetSealed(), KeyVersion: s.GetKeyVersion(), Version: s.GetVersion(),
		UnsealRetryAfter: time.Duration(s.GetUnsealRetryAfterSeconds()) * time.Second,
	}
}

// Status reports whether Metacrypt is initialized and sealed (no token
// needed).
func (c *Client) Status(ctx context.Context) (Status, error) {
	s, err := c.sys.Status(ctx, &mcv1.StatusRequest{})
	if err != nil {
		return Status{}, c.conn.Err(err)
	}
	return statusOf(s), nil
}

// Init sets the unseal password of a fresh Metacrypt, leaving it
// unsealed (admin).
func (c *Client) Init(ctx context.Context, password string) (Status, error) {
	s, err := c.sys.Init(ctx, &mcv1.InitRequest{Password: password})
	if err != nil {
		return Status{}, c.conn.Err(err)
	}
	return statusOf(s.GetStatus()), nil
}

// Unseal opens the barrier (no token needed). Failures are throttled:
// apierr.Throttled with a retry delay.
func (c *Client) Unseal(ctx context.Context, password string) (Status, error) {
	s, err := c.sys.Unseal(ctx, &mcv1.UnsealRequest{Password: password})
	if err != nil {
		return Status{}, c.conn.Err(err)
	}
	return statusOf(s.GetStatus()), nil
}

// Seal closes the barrier and zeroizes the keys (admin).
func (c *Client) Seal(ctx context.Context) (Status, error) {
	s, err := c.sys.Seal(ctx, &mcv1.SealRequest{})
	if err != nil {
		return Status{}, c.conn.Err(err)
	}
	return statusOf(s.GetStatus()), nil
}

// ChangePassword re-wraps the master key under a new password (admin).
func (c *Client) ChangePassword(ctx context.Context, current, next string) error {
	_, err := c.sys.ChangePassword(ctx, &mcv1.ChangePasswordRequest{CurrentPassword: current, NewPassword: next})
	return c.conn.Err(err)
}

// Rotate makes a new master key and re-wraps every data key under it
// (admin); it returns the new key version.
func (c *Client) Rotate(ctx context.Context, password string) (int64, error) {
	r, err := c.sys.Rotate(ctx, &mcv1.RotateRequest{Password: password})
	if err != nil {
		return 0, c.conn.Err(err)
	}
	return r.GetKeyVersion(), nil
}

// Mount is an engine mount.
type Mount struct {
	Name      string    `json:"name"`
	Type      string    `json:"type"`
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
}

func mountOf(m *mcv1.Mount) Mount {
	return Mount{Name: m.GetName(), Type: m.GetType(), ID: m.GetId(), CreatedAt: m.GetCreatedAt().AsTime()}
}

// Mounts lists the mounts.
func (c *Client) Mounts(ctx context.Context) ([]Mount, error) {
	r, err := c.sys.ListMounts(ctx, &mcv1.ListMountsRequest{})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Mount, 0, len(r.GetMounts()))
	for _, m := range r.GetMounts() {
		out = append(out, mountOf(m))
	}
	return out, nil
}

// CreateMount mounts an engine ("ca", "ssh", "transit", "u2u") under name
// (admin).
func (c *Client) CreateMount(ctx context.Context, name, typ string) (Mount, error) {
	r, err := c.sys.CreateMount(ctx, &mcv1.CreateMountRequest{Name: name, Type: typ})
	if err != nil {
		return Mount{}, c.conn.Err(err)
	}
	return mountOf(r.GetMount()), nil
}

// DeleteMount deletes a mount and everything in it (admin).
func (c *Client) DeleteMount(ctx context.Context, name string) error {
	_, err := c.sys.DeleteMount(ctx, &mcv1.DeleteMountRequest{Name: name})
	return c.conn.Err(err)
}

// Request runs one generic engine operation.
func (c *Client) Request(ctx context.Context, mount, operation, path string, data map[string]any) (map[string]any, error) {
	s, err := structpb.NewStruct(data)
	if err != nil {
		return nil, err
	}
	r, err := c.engine.Request(ctx, &mcv1.EngineRequest{Mount: mount, Operation: operation, Path: path, Data: s})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	return r.GetData().AsMap(), nil
}
