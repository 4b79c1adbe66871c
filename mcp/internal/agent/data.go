package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/archive"
	mcdslv1 "git.metacircular.net/metacircular/mcdsl/gen/mcdsl/v1"
	"git.metacircular.net/metacircular/mcdsl/tlsutil"
	"git.metacircular.net/metacircular/mcp/internal/deploy"
	"git.metacircular.net/metacircular/mcp/internal/runtime"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

// MaxFileSize bounds a pushed file.
const MaxFileSize = 1 << 30

// Snapshotter asks a running service for a snapshot of its database
// (mcdsl's SnapshotService) before an export with snapshot method grpc.
type Snapshotter interface {
	Snapshot(ctx context.Context, addr, serverName, token string) error
}

// GRPCSnapshotter calls SnapshotService over TLS, trusting CAFile.
type GRPCSnapshotter struct{ CAFile string }

// Snapshot implements Snapshotter. serverName is what the service's
// certificate names (<service>.svc.D); the address is the node's own
// port, so the name is checked against the certificate, not resolved.
func (g GRPCSnapshotter) Snapshot(ctx context.Context, addr, serverName, token string) error {
	tlsCfg, err := tlsutil.ClientConfig(g.CAFile)
	if err != nil {
		return err
	}
	tlsCfg.ServerName = serverName
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	if _, err := mcdslv1.NewSnapshotServiceClient(conn).Snapshot(ctx, &mcdslv1.SnapshotRequest{}); err != nil {
		return apierr.FromGRPCError(serverName, err)
	}
	return nil
}

// bearer sends the caller's token on to the service (over TLS only).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

// dataDir is the service's data directory.
func (a *Agent) dataDir(service string) (string, error) {
	if err := spec.ValidName(service); err != nil {
		return "", apierr.InvalidField("service", "%s", err.Error())
	}
	if a.Config.DataRoot == "" {
		return "", apierr.New(apierr.Precondition, "the agent has no data root configured")
	}
	return filepath.Join(a.Config.DataRoot, service), nil
}

// relPath checks a path inside a data directory: relative, clean, no
// "..". os.Root enforces the rest (no symlink out).
func relPath(p string) (string, error) {
	p = strings.TrimPrefix(filepath.ToSlash(p), "./")
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return "", apierr.InvalidField("path", "%q must be a clean path relative to the service's data directory", p)
	}
	return filepath.FromSlash(p), nil
}

// PushFile writes r to path in the service's data directory, atomically
// (a temporary file renamed into place), creating directories as needed.
func (a *Agent) PushFile(ctx context.Context, service, p string, mode fs.FileMode, r io.Reader) (string, int64, error) {
	dir, err := a.dataDir(service)
	if err != nil {
		return "", 0, err
	}
	rel, err := relPath(p)
	if err != nil {
		return "", 0, err
	}
	if mode == 0 {
		mode = 0o600
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, fmt.Errorf("data directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", 0, err
	}
	defer func() { _ = root.Close() }()
	if d := filepath.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o700); err != nil {
			return "", 0, fmt.Errorf("push %s: %w", p, err)
		}
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(rel), "."+filepath.Base(rel)+".push-"+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm())
	if err != nil {
		return "", 0, fmt.Errorf("push %s: %w", p, err)
	}
	n, err := io.Copy(f, io.LimitReader(&ctxReader{ctx: ctx, r: r}, MaxFileSize+1))
	if err == nil && n > MaxFileSize {
		err = apierr.InvalidField("data", "file larger than %d bytes", MaxFileSize)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Chmod(tmp, mode.Perm())
	}
	if err == nil {
		err = root.Rename(tmp, rel)
	}
	if err != nil {
		_ = root.Remove(tmp)
		return "", 0, fmt.Errorf("push %s: %w", p, err)
	}
	return filepath.Join(dir, rel), n, nil
}

// PullFile writes a file of the service's data directory to w.
func (a *Agent) PullFile(ctx context.Context, service, p string, w io.Writer) error {
	dir, err := a.dataDir(service)
	if err != nil {
		return err
	}
	rel, err := relPath(p)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return apierr.New(apierr.NotFound, "service "+service+" has no data directory")
	}
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	f, err := root.Open(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return apierr.New(apierr.NotFound, "no file "+p+" in "+dir)
	}
	if err != nil {
		return fmt.Errorf("pull %s: %w", p, err)
	}
	defer func() { _ = f.Close() }()
	if st, err := f.Stat(); err == nil && !st.Mode().IsRegular() {
		return apierr.InvalidField("path", "%s", p+" is not a regular file")
	}
	_, err = io.Copy(w, &ctxReader{ctx: ctx, r: f})
	return err
}

// Export writes the service's data directory to w as tar.zst, after the
// definition's snapshot method. token is the caller's, passed on to the
// service for method grpc.
func (a *Agent) Export(ctx context.Context, service, token string, w io.Writer) error {
	dir, err := a.dataDir(service)
	if err != nil {
		return err
	}
	svc, err := a.Registry.Service(ctx, service)
	if err != nil {
		return err
	}
	rev, err := a.Registry.Revision(ctx, service, svc.Revision)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); err != nil {
		return apierr.New(apierr.NotFound, "service "+service+" has no data directory "+dir)
	}
	sp := rev.Spec
	first := deploy.ContainerName(service, sp.Components[0].Name, svc.Revision)
	switch sp.Snapshot.Method {
	case spec.SnapshotExec:
		if _, err := a.Runtime.Exec(ctx, first, sp.Snapshot.Exec); err != nil {
			return fmt.Errorf("snapshot (exec): %w", err)
		}
	case spec.SnapshotCLI:
		if err := a.snapshotCLI(ctx, sp, first); err != nil {
			return fmt.Errorf("snapshot (cli): %w", err)
		}
	case spec.SnapshotGRPC:
		if err := a.snapshotGRPC(ctx, sp, svc.Revision, token); err != nil {
			return fmt.Errorf("snapshot (grpc): %w", err)
		}
	case spec.SnapshotFull:
		// Stopped while archived: the copy is consistent whatever the
		// service keeps besides SQLite.
		if svc.Desired == "running" {
			for _, c := range sp.Components {
				name := deploy.ContainerName(service, c.Name, svc.Revision)
				if err := a.Runtime.Stop(ctx, name, 30*time.Second); err != nil && !errors.Is(err, runtime.ErrNotFound) {
					return fmt.Errorf("snapshot (full): stop %s: %w", name, err)
				}
				defer func() {
					if err := a.Runtime.Start(context.WithoutCancel(ctx), name); err != nil {
						a.Logger.Error("export: start after full snapshot", "container", name, "error", err)
					}
				}()
			}
		}
	}
	return archive.Create(ctx, w, dir, archive.CreateOptions{Exclude: sp.Snapshot.Exclude, Logger: a.Logger})
}

// snapshotCLI runs "<entrypoint> snapshot [--config FILE]" in the first
// component's container, the config taken from the component's cmd.
func (a *Agent) snapshotCLI(ctx context.Context, sp *spec.Service, container string) error {
	ep, ok := a.Runtime.(interface {
		Entrypoint(ctx context.Context, image string) ([]string, error)
	})
	if !ok {
		return errors.New("the runtime cannot tell an image's entrypoint")
	}
	cmd, err := ep.Entrypoint(ctx, sp.Components[0].Image)
	if err != nil {
		return err
	}
	if len(cmd) == 0 {
		return errors.New("image has no entrypoint: use snapshot method exec")
	}
	cmd = append(cmd, "snapshot")
	args := sp.Components[0].Cmd
	for i, arg := range args {
		if arg == "--config" && i+1 < len(args) {
			cmd = append(cmd, "--config", args[i+1])
		} else if strings.HasPrefix(arg, "--config=") {
			cmd = append(cmd, arg)
		}
	}
	_, err = a.Runtime.Exec(ctx, container, cmd)
	return err
}

// snapshotGRPC calls the service's SnapshotService on its route named
// "grpc" (or its first route) on this node.
func (a *Agent) snapshotGRPC(ctx context.Context, sp *spec.Service, rev int64, token string) error {
	if a.Snapshotter == nil {
		return errors.New("no snapshot client configured")
	}
	ports, err := a.Registry.Ports(ctx, sp.Name, rev)
	if err != nil {
		return err
	}
	port := 0
	for _, p := range ports {
		if p.Route == "grpc" || port == 0 {
			port = p.Port
		}
	}
	if port == 0 {
		return errors.New("the service has no route to reach its gRPC API")
	}
	return a.Snapshotter.Snapshot(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), sp.Name+".svc."+a.Config.Domain, token)
}

// Import unpacks a tar.zst stream into the service's data directory,
// which must be absent or empty; with replace, a non-empty one is moved
// aside first, provided none of the service's containers runs.
func (a *Agent) Import(ctx context.Context, service string, replace bool, r io.Reader) (string, int64, error) {
	dir, err := a.dataDir(service)
	if err != nil {
		return "", 0, err
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		if !replace {
			return "", 0, apierr.New(apierr.Conflict, "data directory "+dir+" is not empty (import with --replace to move it aside)")
		}
		running, err := a.Runtime.List(ctx, map[string]string{runtime.LabelAgent: a.Config.Node, runtime.LabelService: service})
		if err != nil {
			return "", 0, err
		}
		for _, c := range running {
			if c.Running() {
				return "", 0, apierr.New(apierr.Precondition, "container "+c.Name+" runs: stop "+service+" before replacing its data")
			}
		}
		aside := dir + ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(dir, aside); err != nil {
			return "", 0, fmt.Errorf("move %s aside: %w", dir, err)
		}
		a.Logger.Info("import: data directory moved aside", "service", service, "to", aside)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil { //nolint:gosec // the data root is traversable, each service directory is 0700
		return "", 0, err
	}
	cr := &countingReader{r: &ctxReader{ctx: ctx, r: r}}
	if err := archive.Extract(ctx, cr, dir, archive.Limits{}); err != nil {
		if errors.Is(err, archive.ErrUnsafeEntry) || errors.Is(err, archive.ErrLimit) {
			return "", cr.n, apierr.InvalidField("data", "%s", err.Error())
		}
		return "", cr.n, err
	}
	return dir, cr.n, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
