package grpcserver

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// localMethod is a registered unary method, callable in process.
type localMethod struct {
	srv     any
	handler grpc.MethodHandler
}

// Local returns a connection that calls the registered services in
// process, through the same interceptor as a network call (method maps,
// authentication, error mapping, metrics, the call log) but without TLS,
// HTTP/2 framing or serialization: messages are copied, never shared. The
// caller's outgoing metadata becomes the handler's incoming metadata, and
// a peer.Peer in the context (the REST gateway puts the HTTP client's
// address there) is what the handler sees as its peer. Only unary methods
// are served; streams answer Unimplemented.
func (s *Server) Local() grpc.ClientConnInterface { return localConn{s} }

type localConn struct{ s *Server }

var _ grpc.ClientConnInterface = localConn{}

// Invoke calls a unary method.
func (c localConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.s.local[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	in, ok := args.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "%s: request %T is not a protobuf message", method, args)
	}
	out, ok := reply.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "%s: reply %T is not a protobuf message", method, reply)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	sctx := metadata.NewIncomingContext(ctx, md.Copy())
	sctx = metadata.NewOutgoingContext(sctx, nil)
	ts := &localStream{method: method}
	sctx = grpc.NewContextWithServerTransportStream(sctx, ts)
	dec := func(v any) error {
		dst, ok := v.(proto.Message)
		if !ok {
			return fmt.Errorf("%s: request %T is not a protobuf message", method, v)
		}
		proto.Merge(dst, in)
		return nil
	}
	resp, err := m.handler(m.srv, sctx, dec, c.s.unary)
	ts.deliver(opts)
	if err != nil {
		return err
	}
	msg, ok := resp.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "%s: answer %T is not a protobuf message", method, resp)
	}
	proto.Reset(out)
	proto.Merge(out, msg)
	return nil
}

// NewStream refuses: streaming RPCs are served on the network listener only.
func (c localConn) NewStream(_ context.Context, _ *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Errorf(codes.Unimplemented, "%s: streaming RPCs are not served in process", method)
}

// localStream collects the headers and trailers a handler sets, so
// grpc.SetHeader and grpc.SetTrailer work in process and reach the
// caller's grpc.Header and grpc.Trailer call options.
type localStream struct {
	method string

	mu      sync.Mutex
	header  metadata.MD
	trailer metadata.MD
}

func (t *localStream) Method() string { return t.method }

func (t *localStream) SetHeader(md metadata.MD) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.header = metadata.Join(t.header, md)
	return nil
}

func (t *localStream) SendHeader(md metadata.MD) error { return t.SetHeader(md) }

func (t *localStream) SetTrailer(md metadata.MD) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.trailer = metadata.Join(t.trailer, md)
	return nil
}

func (t *localStream) deliver(opts []grpc.CallOption) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = t.header.Copy()
		case grpc.TrailerCallOption:
			*o.TrailerAddr = t.trailer.Copy()
		}
	}
}
