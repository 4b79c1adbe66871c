package spec

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Error is one problem in a definition file, located by line and key.
type Error struct {
	File string
	Line int
	// Key is the key's path ("components[0].routes[1].name"), "" for the
	// file as a whole.
	Key string
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// Errors is every problem found in one or more files.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// The file's shape. Pointers tell a missing key from a zero value.
type fileService struct {
	Name       *string         `toml:"name,omitempty"`
	Node       string          `toml:"node,omitempty"`
	Tier       string          `toml:"tier,omitempty"`
	Active     *bool           `toml:"active,omitempty"`
	Path       string          `toml:"path,omitempty"`
	Build      fileBuild       `toml:"build,omitempty"`
	Components []fileComponent `toml:"components,omitempty"`
	Snapshot   fileSnapshot    `toml:"snapshot,omitempty"`
}

type fileBuild struct {
	Images map[string]string `toml:"images,omitempty"`
}

type fileComponent struct {
	Name    *string     `toml:"name,omitempty"`
	Image   *string     `toml:"image,omitempty"`
	Volumes []string    `toml:"volumes,omitempty"`
	Cmd     []string    `toml:"cmd,omitempty"`
	Env     []string    `toml:"env,omitempty"`
	Network string      `toml:"network,omitempty"`
	User    string      `toml:"user,omitempty"`
	Restart string      `toml:"restart,omitempty"`
	Routes  []fileRoute `toml:"routes,omitempty"`
	Health  fileHealth  `toml:"health,omitempty"`
}

type fileRoute struct {
	Name            string  `toml:"name,omitempty"`
	Port            *int    `toml:"port,omitempty"`
	Mode            *string `toml:"mode,omitempty"`
	Hostname        string  `toml:"hostname,omitempty"`
	Public          bool    `toml:"public,omitempty"`
	BackendProtocol string  `toml:"backend_protocol,omitempty"`
}

type fileHealth struct {
	Type    string `toml:"type,omitempty"`
	Path    string `toml:"path,omitempty"`
	Route   string `toml:"route,omitempty"`
	Timeout string `toml:"timeout,omitempty"`
}

type fileSnapshot struct {
	Method  string   `toml:"method,omitempty"`
	Exec    []string `toml:"exec,omitempty"`
	Exclude []string `toml:"exclude,omitempty"`
}

// Check validates a definition built in code (or received over the API)
// with exactly the rules of a file, and returns it with defaults filled.
// Its errors name "request" as the file and carry no line numbers.
func Check(s *Service) (*Service, error) {
	f := fileService{Name: &s.Name, Node: s.Node, Tier: s.Tier, Active: &s.Active, Path: s.Path,
		Build: fileBuild{Images: s.BuildImages}, Snapshot: fileSnapshot{Method: s.Snapshot.Method, Exec: s.Snapshot.Exec, Exclude: s.Snapshot.Exclude}}
	if s.Name == "" {
		f.Name = nil
	}
	for _, c := range s.Components {
		fc := fileComponent{Volumes: c.Volumes, Cmd: c.Cmd, Env: c.Env, Network: c.Network, User: c.User, Restart: c.Restart,
			Health: fileHealth{Type: c.Health.Type, Path: c.Health.Path, Route: c.Health.Route}}
		if c.Name != "" {
			fc.Name = &c.Name
		}
		if c.Image != "" {
			fc.Image = &c.Image
		}
		if c.Health.Timeout > 0 {
			fc.Health.Timeout = c.Health.Timeout.String()
		}
		for _, r := range c.Routes {
			fr := fileRoute{Name: r.Name, Hostname: r.Hostname, Public: r.Public, BackendProtocol: r.BackendProtocol}
			if r.Port != 0 {
				fr.Port = &r.Port
			}
			if r.Mode != "" {
				fr.Mode = &r.Mode
			}
			fc.Routes = append(fc.Routes, fr)
		}
		f.Components = append(f.Components, fc)
	}
	data, err := toml.Marshal(f)
	if err != nil {
		return nil, Errors{{File: "request", Msg: err.Error()}}
	}
	out, err := Parse("request", data)
	var es Errors
	if errors.As(err, &es) {
		for _, e := range es {
			e.Line = 0
		}
	}
	return out, err
}

// ParseFile reads and parses one definition file.
func ParseFile(path string) (*Service, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the operator's own definition file
	if err != nil {
		return nil, Errors{{File: path, Msg: err.Error()}}
	}
	return Parse(path, data)
}

// Parse parses and validates the definition in data; file names it in
// errors. The error is an Errors listing every problem.
func Parse(file string, data []byte) (*Service, error) {
	pos, err := positions(data)
	if err != nil {
		return nil, Errors{syntaxError(file, err)}
	}
	var f fileService
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, decodeErrors(file, pos, err)
	}
	v := &validator{file: file, pos: pos}
	s := v.service(&f)
	if len(v.errs) > 0 {
		sort.SliceStable(v.errs, func(i, j int) bool { return v.errs[i].Line < v.errs[j].Line })
		return nil, v.errs
	}
	return s, nil
}

// LoadDir parses every *.toml file of dir, sorted by name, and checks
// that no two define the same service. All problems of all files are
// returned together.
func LoadDir(dir string) ([]*Service, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.toml"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("services dir: %w", err)
	}
	sort.Strings(paths)
	var out []*Service
	var errs Errors
	byName := map[string]string{}
	for _, p := range paths {
		s, err := ParseFile(p)
		if err != nil {
			var es Errors
			if errors.As(err, &es) {
				errs = append(errs, es...)
				continue
			}
			return nil, err
		}
		if prev, dup := byName[s.Name]; dup {
			errs = append(errs, &Error{File: p, Key: "name", Line: 0, Msg: fmt.Sprintf("service %q is also defined in %s", s.Name, prev)})
			continue
		}
		byName[s.Name] = p
		out = append(out, s)
	}
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}

func syntaxError(file string, err error) *Error {
	var pe *unstable.ParserError
	if errors.As(err, &pe) {
		return &Error{File: file, Msg: "syntax error: " + pe.Message}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return &Error{File: file, Line: row, Msg: "syntax error: " + de.Error()}
	}
	return &Error{File: file, Msg: "syntax error: " + err.Error()}
}

// decodeErrors turns go-toml's errors into located Errors.
func decodeErrors(file string, pos *index, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var out Errors
		for _, e := range strict.Errors {
			row, _ := e.Position()
			key := pos.resolve(row, e.Key())
			out = append(out, &Error{File: file, Line: row, Key: key, Msg: "unknown key"})
		}
		return out
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		return Errors{{File: file, Line: row, Key: pos.resolve(row, de.Key()), Msg: de.Error()}}
	}
	return Errors{{File: file, Msg: err.Error()}}
}

// index maps every key path of a document to its line. Array tables are
// numbered as the decoder numbers them: components[1].routes[0].port.
type index struct {
	lines map[string]int
	// byLine is the resolved path of the table header or key on a line.
	byLine map[int]string
}

func positions(data []byte) (*index, error) {
	var p unstable.Parser
	p.Reset(data)
	ix := &index{lines: map[string]int{}, byLine: map[int]string{}}
	counts := map[string]int{}
	prefix := ""
	line := func(n *unstable.Node) int {
		if n.Raw.Length > 0 {
			return p.Shape(n.Raw).Start.Line
		}
		return p.Shape(p.Range(n.Data)).Start.Line
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			var keys []*unstable.Node
			it := e.Key()
			for it.Next() {
				keys = append(keys, it.Node())
			}
			path := ""
			for i, k := range keys {
				path = join(path, string(k.Data))
				last := i == len(keys)-1
				switch {
				case last && e.Kind == unstable.ArrayTable:
					counts[path]++
					path = fmt.Sprintf("%s[%d]", path, counts[path]-1)
				case counts[path] > 0:
					path = fmt.Sprintf("%s[%d]", path, counts[path]-1)
				}
			}
			prefix = path
			l := line(keys[0])
			ix.lines[path] = l
			ix.byLine[l] = path
		case unstable.KeyValue:
			path := prefix
			it := e.Key()
			var first *unstable.Node
			for it.Next() {
				if first == nil {
					first = it.Node()
				}
				path = join(path, string(it.Node().Data))
			}
			l := line(first)
			ix.lines[path] = l
			ix.byLine[l] = path
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	return ix, nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// line is the line of path, or of its nearest enclosing table.
func (ix *index) line(path string) int {
	for p := path; p != ""; {
		if l, ok := ix.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// resolve names the key the decoder reports at row: the indexed path on
// that line when there is one (it carries the array numbers), else the
// decoder's own dotted key.
func (ix *index) resolve(row int, key []string) string {
	if p, ok := ix.byLine[row]; ok {
		if len(key) == 0 || strings.HasSuffix(p, key[len(key)-1]) {
			return p
		}
	}
	return strings.Join(key, ".")
}

// validator collects the semantic problems of one file.
type validator struct {
	file string
	pos  *index
	errs Errors
}

func (v *validator) errf(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: v.pos.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) service(f *fileService) *Service {
	s := &Service{Node: f.Node, Tier: f.Tier, Active: true, Path: f.Path, BuildImages: f.Build.Images}
	if f.Active != nil {
		s.Active = *f.Active
	}
	if f.Name == nil {
		v.errf("name", "missing required key")
	} else if err := ValidName(*f.Name); err != nil {
		v.errf("name", "%v", err)
	} else {
		s.Name = *f.Name
	}
	switch {
	case f.Node != "" && f.Tier != "":
		v.errf("tier", "give node (a pin) or tier, not both")
	case f.Node == "" && f.Tier == "":
		s.Tier = TierWorker
	case f.Node != "":
		if err := ValidName(f.Node); err != nil {
			v.errf("node", "%v", err)
		}
	case f.Tier != TierCore && f.Tier != TierWorker:
		v.errf("tier", "must be %q or %q, not %q", TierCore, TierWorker, f.Tier)
	}
	if s.Path == "" {
		s.Path = s.Name
	}
	if filepath.IsAbs(s.Path) || strings.Contains(filepath.ToSlash(s.Path), "..") {
		v.errf("path", "must be a relative path inside the build workspace")
	}
	if len(f.Components) == 0 {
		v.errf("components", "a service needs at least one [[components]]")
	}
	comps := map[string]bool{}
	hosts := map[string]string{}
	repos := map[string]bool{}
	for i := range f.Components {
		c := v.component(i, &f.Components[i], comps, hosts)
		if c.Image != "" {
			if img, err := ParseImage(c.Image); err == nil {
				repos[img.Name()] = true
			}
		}
		s.Components = append(s.Components, c)
	}
	for repo, df := range f.Build.Images {
		key := "build.images." + repo
		if !repos[repo] {
			v.errf(key, "no component image has the repository name %q", repo)
		}
		if df == "" || filepath.IsAbs(df) || strings.Contains(filepath.ToSlash(df), "..") {
			v.errf(key, "must name a Dockerfile relative to the service path")
		}
	}
	s.Snapshot = v.snapshot(&f.Snapshot)
	return s
}

func (v *validator) component(i int, f *fileComponent, names map[string]bool, hosts map[string]string) Component {
	at := fmt.Sprintf("components[%d]", i)
	c := Component{Volumes: f.Volumes, Cmd: f.Cmd, Env: f.Env, Network: f.Network, User: f.User, Restart: f.Restart}
	switch {
	case f.Name == nil:
		v.errf(at+".name", "missing required key")
	case ValidName(*f.Name) != nil:
		v.errf(at+".name", "%v", ValidName(*f.Name))
	case names[*f.Name]:
		v.errf(at+".name", "duplicate component name %q", *f.Name)
	default:
		c.Name = *f.Name
		names[c.Name] = true
	}
	if f.Image == nil {
		v.errf(at+".image", "missing required key")
	} else if _, err := ParseImage(*f.Image); err != nil {
		v.errf(at+".image", "%v", err)
	} else {
		c.Image = *f.Image
	}
	for j, vol := range f.Volumes {
		if err := validVolume(vol); err != nil {
			v.errf(fmt.Sprintf("%s.volumes[%d]", at, j), "%v", err)
		}
	}
	for j, kv := range f.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !envName.MatchString(k) {
			v.errf(fmt.Sprintf("%s.env[%d]", at, j), "must be KEY=VALUE, got %q", kv)
		} else if k == "PORT" || strings.HasPrefix(k, "PORT_") {
			v.errf(fmt.Sprintf("%s.env[%d]", at, j), "%s is set by the agent from the routes", k)
		}
	}
	switch c.Restart {
	case "":
		c.Restart = RestartUnlessStopped
	case RestartNo, RestartOnFailure, RestartAlways, RestartUnlessStopped:
	default:
		v.errf(at+".restart", "must be no, on-failure, always or unless-stopped, not %q", c.Restart)
	}
	routeNames := map[string]bool{}
	for j := range f.Routes {
		r := v.route(fmt.Sprintf("%s.routes[%d]", at, j), &f.Routes[j], routeNames, hosts, len(f.Routes))
		c.Routes = append(c.Routes, r)
	}
	c.Health = v.health(at+".health", &f.Health, c.Routes)
	return c
}

func (v *validator) route(at string, f *fileRoute, names map[string]bool, hosts map[string]string, n int) Route {
	r := Route{Name: f.Name, Hostname: strings.ToLower(strings.TrimSuffix(f.Hostname, ".")), Public: f.Public, BackendProtocol: f.BackendProtocol}
	if r.Name == "" && n > 1 {
		v.errf(at+".name", "a component with several routes must name each one")
	}
	if r.Name != "" {
		if err := ValidName(r.Name); err != nil {
			v.errf(at+".name", "%v", err)
		} else if names[r.Name] {
			v.errf(at+".name", "duplicate route name %q", r.Name)
		}
		names[r.Name] = true
	}
	if f.Port == nil {
		v.errf(at+".port", "missing required key")
	} else if *f.Port < 1 || *f.Port > 65535 {
		v.errf(at+".port", "must be a port number (the mc-proxy listener, e.g. 443), not %d", *f.Port)
	} else {
		r.Port = *f.Port
	}
	if f.Mode == nil {
		v.errf(at+".mode", "missing required key")
	} else {
		r.Mode = strings.ToLower(*f.Mode)
		if r.Mode != ModeL4 && r.Mode != ModeL7 {
			v.errf(at+".mode", "must be l4 or l7, not %q", *f.Mode)
		}
	}
	switch r.BackendProtocol {
	case "":
		if r.Mode == ModeL7 {
			r.BackendProtocol = BackendHTTP1
		}
	case BackendHTTP1, BackendH2C, BackendAuto:
		if r.Mode == ModeL4 {
			v.errf(at+".backend_protocol", "applies to l7 routes only")
		}
	default:
		v.errf(at+".backend_protocol", "must be http1, h2c or auto, not %q", r.BackendProtocol)
	}
	if r.Hostname != "" && !validHostname(r.Hostname) {
		v.errf(at+".hostname", "%q is not a valid host name", f.Hostname)
	}
	key := fmt.Sprintf("%s:%d", r.Hostname, r.Port)
	if prev, dup := hosts[key]; dup && r.Port != 0 {
		v.errf(at+".hostname", "host name %q on port %d is already routed by %s", displayHost(r.Hostname), r.Port, prev)
	}
	hosts[key] = at
	return r
}

func displayHost(h string) string {
	if h == "" {
		return "<service>.svc.D"
	}
	return h
}

func (v *validator) health(at string, f *fileHealth, routes []Route) Health {
	h := Health{Type: f.Type, Path: f.Path, Route: f.Route}
	switch h.Type {
	case "":
		h.Type = HealthNone
		if len(routes) > 0 {
			h.Type = HealthTCP
		}
	case HealthTCP, HealthHTTP, HealthGRPC:
		if len(routes) == 0 {
			v.errf(at+".type", "a %s check needs a route to probe", h.Type)
		}
	case HealthNone:
	default:
		v.errf(at+".type", "must be tcp, http, grpc or none, not %q", h.Type)
	}
	if h.Type == HealthHTTP && h.Path == "" {
		h.Path = "/v1/health"
	}
	if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
		v.errf(at+".path", "must start with /")
	}
	if h.Route != "" {
		found := false
		for _, r := range routes {
			found = found || r.Name == h.Route
		}
		if !found {
			v.errf(at+".route", "no route named %q", h.Route)
		}
	}
	if f.Timeout != "" {
		d, err := time.ParseDuration(f.Timeout)
		if err != nil || d <= 0 {
			v.errf(at+".timeout", "must be a positive duration such as \"60s\", not %q", f.Timeout)
		}
		h.Timeout = d
	}
	return h
}

func (v *validator) snapshot(f *fileSnapshot) Snapshot {
	s := Snapshot{Method: f.Method, Exec: f.Exec, Exclude: f.Exclude}
	switch s.Method {
	case "":
		s.Method = SnapshotDefault
	case SnapshotDefault, SnapshotGRPC, SnapshotCLI, SnapshotFull:
	case SnapshotExec:
		if len(s.Exec) == 0 {
			v.errf("snapshot.exec", "method exec needs the command to run in the container")
		}
	default:
		// "exec: <cmd>" is accepted as a one-line form of method exec.
		if cmd, ok := strings.CutPrefix(s.Method, "exec:"); ok && strings.TrimSpace(cmd) != "" {
			s.Method, s.Exec = SnapshotExec, strings.Fields(cmd)
		} else {
			v.errf("snapshot.method", "must be default, grpc, cli, exec or full, not %q", f.Method)
		}
	}
	if len(s.Exec) > 0 && s.Method != SnapshotExec {
		v.errf("snapshot.exec", "applies to method exec only")
	}
	for i, p := range s.Exclude {
		if _, err := filepath.Match(p, ""); err != nil || p == "" {
			v.errf(fmt.Sprintf("snapshot.exclude[%d]", i), "bad pattern %q", p)
		}
	}
	return s
}
