// Package client is the public Go client of the MCP agent's API (mcp.v1
// AgentService and DataService) over gRPC with TLS 1.3 and an MCIAS
// bearer token. The mcp CLI is built on it; the master will be too.
// Operations (deploy, undeploy, stop, start, restart, recover) stream
// their progress to a callback and return the final event; one that did
// not succeed is an *OperationError.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/grpcclient"
	mcpv1 "git.metacircular.net/metacircular/mcp/gen/mcp/v1"
)

// KindOf is the kind of a failed call's error (apierr.NotFound, ...).
func KindOf(err error) apierr.Kind { return apierr.KindOf(err) }

// Client calls one agent.
type Client struct {
	conn  *grpcclient.Conn
	agent mcpv1.AgentServiceClient
	data  mcpv1.DataServiceClient
	// Addr is the address in use.
	Addr string
}

// New returns a client for the agent at addr (host:port), trusting
// caFile (the system roots when empty). It connects on the first call.
func New(addr, caFile, token string) (*Client, error) {
	conn, err := grpcclient.Dial("mcp-agent", addr, caFile, token)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, agent: mcpv1.NewAgentServiceClient(conn), data: mcpv1.NewDataServiceClient(conn), Addr: addr}, nil
}

// DialFirst returns a client for the first of addrs that accepts a TCP
// connection within timeout each (a node's addresses, tried in order).
func DialFirst(ctx context.Context, addrs []string, caFile, token string, timeout time.Duration) (*Client, error) {
	var errs []string
	for _, a := range addrs {
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, "tcp", a)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		_ = c.Close()
		return New(a, caFile, token)
	}
	if len(addrs) == 0 {
		return nil, errors.New("no agent address")
	}
	return nil, apierr.New(apierr.Unavailable, "no agent address answers: "+strings.Join(errs, "; "))
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// OperationError is an operation that did not succeed: Final is its last
// event (Result failed or rolled_back, Error the step and cause).
type OperationError struct{ Final *mcpv1.OperationEvent }

func (e *OperationError) Error() string {
	return fmt.Sprintf("%s %s %s: %s", e.Final.GetKind(), e.Final.GetService(), strings.ReplaceAll(e.Final.GetResult(), "_", " "), e.Final.GetError())
}

type eventStream interface {
	Recv() (*mcpv1.OperationEvent, error)
}

func (c *Client) follow(s eventStream, err error, progress func(*mcpv1.OperationEvent)) (*mcpv1.OperationEvent, error) {
	if err != nil {
		return nil, c.conn.Err(err)
	}
	for {
		ev, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the agent ended the operation's stream without a result")
		}
		if err != nil {
			return nil, c.conn.Err(err)
		}
		if progress != nil {
			progress(ev)
		}
		if ev.GetFinal() {
			if ev.GetResult() != "succeeded" {
				return ev, &OperationError{Final: ev}
			}
			return ev, nil
		}
	}
}

// Deploy deploys (or redeploys) a service.
func (c *Client) Deploy(ctx context.Context, spec *mcpv1.ServiceSpec, progress func(*mcpv1.OperationEvent)) (*mcpv1.OperationEvent, error) {
	s, err := c.agent.Deploy(ctx, &mcpv1.DeployRequest{Spec: spec})
	return c.follow(s, err, progress)
}

// Undeploy removes a service from the node.
func (c *Client) Undeploy(ctx context.Context, service string, progress func(*mcpv1.OperationEvent)) (*mcpv1.OperationEvent, error) {
	s, err := c.agent.Undeploy(ctx, &mcpv1.ServiceRequest{Service: service})
	return c.follow(s, err, progress)
}

// Stop stops a service (DNS, routes, containers).
func (c *Client) Stop(ctx context.Context, service string, progress func(*mcpv1.OperationEvent)) (*mcpv1.OperationEvent, error) {
	s, err := c.agent.Stop(ctx, &mcpv1.ServiceRequest{Service: service})
	return c.follow(s, err, progress)
}

// Start starts a stopped service.
func (c *Client) Start(ctx context.Context, service string, progress func(*mcpv1.OperationEvent)) (*mcpv1.OperationEvent, error) {
	s, err := c.agent.Start(ctx, &mcpv1.ServiceRequest{Service: service})
	return c.follow(s, err, progress)
}

// Restart restarts a service's containers.
func (c *Client) Restart(ctx context.Context, service string, progress func(*mcpv1.OperationEvent)) (*mcpv1.OperationEvent, error) {
	s, err := c.agent.Restart(ctx, &mcpv1.ServiceRequest{Service: service})
	return c.follow(s, err, progress)
}

// Recover recreates the containers of the named services (all running
// ones when none is named) from the agent's registry.
func (c *Client) Recover(ctx context.Context, services []string, progress func(*mcpv1.OperationEvent)) (*mcpv1.OperationEvent, error) {
	s, err := c.agent.Recover(ctx, &mcpv1.RecoverRequest{Services: services})
	return c.follow(s, err, progress)
}

// ListServices lists the node's services.
func (c *Client) ListServices(ctx context.Context) ([]*mcpv1.Service, error) {
	resp, err := c.agent.ListServices(ctx, &mcpv1.ListServicesRequest{})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	return resp.GetServices(), nil
}

// GetService is one service with its recent events and alerts.
func (c *Client) GetService(ctx context.Context, service string) (*mcpv1.GetServiceResponse, error) {
	resp, err := c.agent.GetService(ctx, &mcpv1.ServiceRequest{Service: service})
	return resp, c.conn.Err(err)
}

// NodeStatus is the agent's own state.
func (c *Client) NodeStatus(ctx context.Context) (*mcpv1.NodeStatusResponse, error) {
	resp, err := c.agent.NodeStatus(ctx, &mcpv1.NodeStatusRequest{})
	return resp, c.conn.Err(err)
}

// Logs writes a component's logs to w until they end (or ctx does, when
// following).
func (c *Client) Logs(ctx context.Context, req *mcpv1.LogsRequest, w io.Writer) error {
	s, err := c.agent.Logs(ctx, req)
	if err != nil {
		return c.conn.Err(err)
	}
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return c.conn.Err(err)
		}
		if _, err := w.Write(m.GetData()); err != nil {
			return err
		}
	}
}

const chunk = 64 << 10

// PushFile writes r to path in the service's data directory.
func (c *Client) PushFile(ctx context.Context, service, path string, mode fs.FileMode, r io.Reader) (*mcpv1.PushFileResponse, error) {
	s, err := c.data.PushFile(ctx)
	if err != nil {
		return nil, c.conn.Err(err)
	}
	if err := s.Send(&mcpv1.PushFileRequest{Part: &mcpv1.PushFileRequest_Header{Header: &mcpv1.PushFileHeader{
		Service: service, Path: path, Mode: uint32(mode.Perm())}}}); err != nil {
		return nil, c.closeErr(s.CloseAndRecv())
	}
	if err := sendAll(r, func(b []byte) error {
		return s.Send(&mcpv1.PushFileRequest{Part: &mcpv1.PushFileRequest_Data{Data: b}})
	}); err != nil {
		if _, rerr := s.CloseAndRecv(); rerr != nil {
			return nil, c.conn.Err(rerr)
		}
		return nil, err
	}
	resp, err := s.CloseAndRecv()
	return resp, c.conn.Err(err)
}

func (c *Client) closeErr(_ any, err error) error { return c.conn.Err(err) }

func sendAll(r io.Reader, send func([]byte) error) error {
	buf := make([]byte, chunk)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if serr := send(append([]byte(nil), buf[:n]...)); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

type chunkStream interface {
	Recv() (*mcpv1.DataChunk, error)
}

func (c *Client) receive(s chunkStream, err error, w io.Writer) (int64, error) {
	if err != nil {
		return 0, c.conn.Err(err)
	}
	var n int64
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, c.conn.Err(err)
		}
		k, err := w.Write(m.GetData())
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
}

// PullFile writes a file of the service's data directory to w.
func (c *Client) PullFile(ctx context.Context, service, path string, w io.Writer) (int64, error) {
	s, err := c.data.PullFile(ctx, &mcpv1.PullFileRequest{Service: service, Path: path})
	return c.receive(s, err, w)
}

// Export writes the service's data as tar.zst to w.
func (c *Client) Export(ctx context.Context, service string, w io.Writer) (int64, error) {
	s, err := c.data.ExportServiceData(ctx, &mcpv1.ExportServiceDataRequest{Service: service})
	return c.receive(s, err, w)
}

// Import unpacks a tar.zst stream into the service's data directory.
func (c *Client) Import(ctx context.Context, service string, replace bool, r io.Reader) (*mcpv1.ImportServiceDataResponse, error) {
	s, err := c.data.ImportServiceData(ctx)
	if err != nil {
		return nil, c.conn.Err(err)
	}
	if err := s.Send(&mcpv1.ImportServiceDataRequest{Part: &mcpv1.ImportServiceDataRequest_Header{Header: &mcpv1.ImportHeader{
		Service: service, Replace: replace}}}); err != nil {
		return nil, c.closeErr(s.CloseAndRecv())
	}
	if err := sendAll(r, func(b []byte) error {
		return s.Send(&mcpv1.ImportServiceDataRequest{Part: &mcpv1.ImportServiceDataRequest_Data{Data: b}})
	}); err != nil {
		if _, rerr := s.CloseAndRecv(); rerr != nil {
			return nil, c.conn.Err(rerr)
		}
		return nil, err
	}
	resp, err := s.CloseAndRecv()
	return resp, c.conn.Err(err)
}
