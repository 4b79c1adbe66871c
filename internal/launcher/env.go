package launcher

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"

	"git.metacircular.net/metacircular/internal/seedpki"
	"git.metacircular.net/metacircular/mcdsl/atomicfile"
)

// Env is what the launcher gives a service's Prepare: the shared state root,
// the seed CA, the platform domain and helpers for directories, ports and
// certificates. Each service gets its own Env.
type Env struct {
	// Root is the absolute state root; service s keeps its state in Root/s.
	Root string
	// Domain is the platform domain D; services are named <service>.svc.D.
	Domain string
	// BinDir is where the service binaries live. A Process.Path without a
	// slash is looked up here first, then in $PATH.
	BinDir string
	// CA is the seed root CA, already initialized.
	CA *seedpki.CA

	ports   *portStore
	outputs []string
}

// Dir returns the state directory Root/name, creating it with mode 0700 if
// it does not exist.
func (e *Env) Dir(name string) (string, error) {
	if err := seedpki.ValidateName(name); err != nil {
		return "", fmt.Errorf("service directory: %w", err)
	}
	dir := filepath.Join(e.Root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("service directory: %w", err)
	}
	return dir, nil
}

// Port returns the 127.0.0.1 TCP port recorded for key, allocating a free
// one on first use. Allocations persist in Root/launcher/ports.json, so a
// re-run gets the same port for the same key and configs written on the
// first run stay valid. Keys are global: use "<service>" or
// "<service>.<listener>".
func (e *Env) Port(key string) (int, error) {
	return e.ports.get(key)
}

// Issue issues (or reuses) a seed-CA certificate named name for the given
// DNS names and IP addresses with the default validity.
func (e *Env) Issue(name string, dnsNames []string, ips []net.IP) (seedpki.Issued, error) {
	return e.CA.Issue(name, seedpki.IssueRequest{DNSNames: dnsNames, IPs: ips})
}

// Print queues a line for the operator, such as an endpoint or a one-time
// admin credential. Lines are printed to the launcher's output once the
// service is healthy (or has failed, so nothing is lost) and are never
// written to disk by the launcher.
func (e *Env) Print(line string) {
	e.outputs = append(e.outputs, line)
}

// portStore is the persistent key → port map behind Env.Port.
type portStore struct {
	path string

	mu    sync.Mutex
	ports map[string]int
}

func loadPorts(path string) (*portStore, error) {
	s := &portStore{path: path, ports: map[string]int{}}
	data, err := os.ReadFile(path) //nolint:gosec // the launcher's own state file under its root
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load ports: %w", err)
	}
	if err := json.Unmarshal(data, &s.ports); err != nil {
		return nil, fmt.Errorf("load ports: %s: %w", path, err)
	}
	for key, port := range s.ports {
		if port <= 0 || port > 65535 {
			return nil, fmt.Errorf("load ports: %s: key %q has invalid port %d", path, key, port)
		}
	}
	return s, nil
}

func (s *portStore) get(key string) (int, error) {
	if key == "" {
		return 0, errors.New("allocate port: empty key")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if port, ok := s.ports[key]; ok {
		return port, nil
	}
	taken := map[int]bool{}
	for _, p := range s.ports {
		taken[p] = true
	}
	// A port recorded for another key may be free right now and handed out
	// again by the kernel; try a few times for one nobody owns.
	for range 20 {
		port, err := freePort()
		if err != nil {
			return 0, fmt.Errorf("allocate port for %q: %w", key, err)
		}
		if taken[port] {
			continue
		}
		s.ports[key] = port
		data, err := json.MarshalIndent(s.ports, "", "  ")
		if err != nil {
			delete(s.ports, key)
			return 0, fmt.Errorf("allocate port for %q: %w", key, err)
		}
		if err := atomicfile.Write(s.path, append(data, '\n'), 0o600); err != nil {
			delete(s.ports, key)
			return 0, fmt.Errorf("allocate port for %q: %w", key, err)
		}
		return port, nil
	}
	return 0, fmt.Errorf("allocate port for %q: no free port found", key)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("allocate port: unexpected address %v", l.Addr())
	}
	return addr.Port, nil
}

// Binary resolves a service binary the way Process.Path is resolved: in
// BinDir first, then $PATH. Prepare uses it to run one-off commands such as
// a service's init.
func (e *Env) Binary(name string) (string, error) {
	return resolveBinary(e.BinDir, name)
}
