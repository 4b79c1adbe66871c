// Package grpcclient is the shared core of the platform's public Go
// clients (mcias/client, mcns/client, mcproxy/client, ...): a gRPC
// connection over TLS 1.3 to one service, an MCIAS bearer token sent with
// every call (never over a connection without TLS, except a Unix socket
// whose file permissions are the access control), and failed calls turned
// into *apierr.Remote errors that keep the kind, the invalid field and the
// retry delay.
package grpcclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/tlsutil"
)

// Conn is a connection to one service.
type Conn struct {
	*grpc.ClientConn
	service string
	token   *bearer
}

// Dial connects lazily (the first call dials) to the gRPC address addr
// ("host:port") of service, trusting caFile (the system roots when
// empty), with token as the bearer token (empty: none until SetToken).
func Dial(service, addr, caFile, token string) (*Conn, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, fmt.Errorf("%s client: %w", service, err)
	}
	tlsCfg, err := tlsutil.ClientConfig(caFile)
	if err != nil {
		return nil, fmt.Errorf("%s client: %w", service, err)
	}
	b := &bearer{secure: true}
	b.set(token)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)), grpc.WithPerRPCCredentials(b))
	if err != nil {
		return nil, fmt.Errorf("%s client: %w", service, err)
	}
	return &Conn{ClientConn: cc, service: service, token: b}, nil
}

// DialUnix connects to a service's Unix socket (an admin socket whose file
// permissions decide who may use it): no TLS and no token.
func DialUnix(service, path string) (*Conn, error) {
	if path == "" {
		return nil, fmt.Errorf("%s client: no socket path", service)
	}
	cc, err := grpc.NewClient("passthrough:///"+service,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}))
	if err != nil {
		return nil, fmt.Errorf("%s client: %w", service, err)
	}
	return &Conn{ClientConn: cc, service: service, token: &bearer{}}, nil
}

// CheckAddr checks a gRPC address given by a user: host:port, not a URL.
func CheckAddr(addr string) error {
	if addr == "" {
		return errors.New("no server address")
	}
	if u, err := url.Parse(addr); err == nil && u.Scheme != "" && u.Host != "" {
		return fmt.Errorf("server %q is a URL; give the service's gRPC address as host:port (its server.grpc_addr)", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" || strings.ContainsAny(host, "/") {
		return fmt.Errorf("server %q: expected host:port (the service's server.grpc_addr)", addr)
	}
	return nil
}

// SetToken replaces the bearer token sent with every call.
func (c *Conn) SetToken(token string) { c.token.set(token) }

// Err turns a failed call's error into an *apierr.Remote naming the
// service (nil stays nil).
func (c *Conn) Err(err error) error { return apierr.FromGRPCError(c.service, err) }

// bearer is the per-call credential carrying the token.
type bearer struct {
	secure bool
	mu     sync.RWMutex
	token  string
}

func (b *bearer) set(t string) {
	b.mu.Lock()
	b.token = t
	b.mu.Unlock()
}

func (b *bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.token == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity keeps the token off connections without TLS.
func (b *bearer) RequireTransportSecurity() bool { return b.secure }
