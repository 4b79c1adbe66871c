package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Duration is a time.Duration written in TOML as a string such as "30s".
type Duration struct {
	time.Duration
}

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: expected a value like \"30s\" or \"5m\"", string(b))
	}
	if v < 0 {
		return fmt.Errorf("duration %q: must not be negative", string(b))
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// Server is the standard [server] section.
type Server struct {
	// ListenAddr is the HTTPS (or plain HTTP, see PlainHTTP) address.
	// $PORT overrides it with ":$PORT".
	ListenAddr string `toml:"listen_addr"`
	// GRPCAddr is the gRPC address; $PORT_GRPC overrides it.
	GRPCAddr string `toml:"grpc_addr"`
	// TLSCert is a full-chain PEM file; TLSKey its private key.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// PlainHTTP serves HTTP without TLS, for services that sit behind an
	// mc-proxy L7 route that terminates TLS for them.
	PlainHTTP bool `toml:"plain_http"`
	// ShutdownTimeout bounds the graceful drain on SIGTERM (default 10s).
	ShutdownTimeout Duration `toml:"shutdown_timeout"`
	// MetricsAddr, when set, serves GET /metrics (and /v1/health) over
	// plain HTTP on its own address, normally loopback, and takes
	// /metrics off the main listener.
	MetricsAddr string `toml:"metrics_addr"`
	// ProxyProtocolFrom lists the peers (addresses or CIDR prefixes) whose
	// PROXY v1/v2 headers are believed on the HTTP and gRPC listeners: the
	// mc-proxy in front of the service, so that throttling and logs see
	// the real client. Empty: no header is ever read.
	ProxyProtocolFrom []string `toml:"proxy_protocol_from"`
	// ProxyHeaderTimeout bounds reading a trusted peer's header (default
	// 5s).
	ProxyHeaderTimeout Duration `toml:"proxy_header_timeout"`
}

// Validate checks that a TLS-serving server has its certificate and key
// and that the trusted PROXY peers parse.
func (s Server) Validate() error {
	for i, p := range s.ProxyProtocolFrom {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				return fmt.Errorf("server.proxy_protocol_from[%d]: %q is neither an address nor a CIDR prefix", i, p)
			}
		}
	}
	if s.ListenAddr == "" && s.GRPCAddr == "" {
		return errors.New("missing required field server.listen_addr (or server.grpc_addr)")
	}
	if !s.PlainHTTP || s.GRPCAddr != "" {
		if s.TLSCert == "" {
			return errors.New("missing required field server.tls_cert")
		}
		if s.TLSKey == "" {
			return errors.New("missing required field server.tls_key")
		}
	}
	return nil
}

// Database is the standard [database] section.
type Database struct {
	Path string `toml:"path" required:"true"`
}

// MCIAS is the standard [mcias] section: where and as whom the service
// authenticates its callers.
type MCIAS struct {
	ServerURL   string   `toml:"server_url" required:"true"`
	CACert      string   `toml:"ca_cert"`
	ServiceName string   `toml:"service_name"`
	Tags        []string `toml:"tags"`
}

// Load reads the TOML file at path into dst (a pointer to a struct whose
// fields are the sections), then applies environment overrides for service,
// then $PORT and $PORT_GRPC, then checks required fields and calls
// Validate() error on dst and on each section that has it. Any error names
// the file.
func Load(path, service string, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config %s: destination must be a pointer to a struct", path)
	}
	data, err := os.ReadFile(path) //nolint:gosec // the operator names the config file
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("config %s: %s", path, describe(err))
	}
	if err := applyEnv(rv.Elem(), envPrefix(service)); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := applyPorts(rv.Elem()); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := checkRequired(rv.Elem(), ""); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := validate(rv.Elem()); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// describe turns go-toml's errors into one line naming the key and line.
func describe(err error) string {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var keys []string
		for _, e := range strict.Errors {
			row, _ := e.Position()
			keys = append(keys, fmt.Sprintf("%q (line %d)", strings.Join(e.Key(), "."), row))
		}
		return "unknown key " + strings.Join(keys, ", unknown key ")
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		if k := de.Key(); len(k) > 0 {
			return fmt.Sprintf("key %q (line %d): %s", strings.Join(k, "."), row, de.Error())
		}
		return fmt.Sprintf("line %d column %d: %s", row, col, de.Error())
	}
	return err.Error()
}

func envPrefix(service string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(service))
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

var durationType = reflect.TypeFor[Duration]()

// isLeaf reports whether a field holds a scalar setting (as opposed to a
// section or an array of tables).
func isLeaf(t reflect.Type) bool {
	if t == durationType {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float64:
		return true
	case reflect.Slice:
		return t.Elem().Kind() == reflect.String
	}
	return false
}

// applyEnv overrides top-level scalars from PREFIX_KEY and section scalars
// from PREFIX_SECTION_KEY.
func applyEnv(v reflect.Value, prefix string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := tomlName(f)
		if !f.IsExported() || name == "" {
			continue
		}
		fv := v.Field(i)
		if isLeaf(f.Type) {
			if err := setFromEnv(fv, prefix+"_"+strings.ToUpper(name), name); err != nil {
				return err
			}
			continue
		}
		if f.Type.Kind() != reflect.Struct {
			continue
		}
		st := f.Type
		for j := 0; j < st.NumField(); j++ {
			sf := st.Field(j)
			key := tomlName(sf)
			if !sf.IsExported() || key == "" || !isLeaf(sf.Type) {
				continue
			}
			env := prefix + "_" + strings.ToUpper(name) + "_" + strings.ToUpper(key)
			if err := setFromEnv(fv.Field(j), env, name+"."+key); err != nil {
				return err
			}
		}
	}
	return nil
}

func setFromEnv(fv reflect.Value, env, key string) error {
	raw, ok := os.LookupEnv(env)
	if !ok {
		return nil
	}
	if err := setString(fv, raw); err != nil {
		return fmt.Errorf("environment %s (for %s): %w", env, key, err)
	}
	return nil
}

func setString(fv reflect.Value, raw string) error {
	if fv.Type() == durationType {
		var d Duration
		if err := d.UnmarshalText([]byte(raw)); err != nil {
			return err
		}
		fv.Set(reflect.ValueOf(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("expected true or false, got %q", raw)
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(raw, 10, fv.Type().Bits())
		if err != nil {
			return fmt.Errorf("expected an integer, got %q", raw)
		}
		fv.SetInt(n)
	case reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(raw, 10, fv.Type().Bits())
		if err != nil {
			return fmt.Errorf("expected a non-negative integer, got %q", raw)
		}
		fv.SetUint(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("expected a number, got %q", raw)
		}
		fv.SetFloat(n)
	case reflect.Slice:
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		fv.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported type %s", fv.Type())
	}
	return nil
}

// applyPorts lets $PORT and $PORT_GRPC, which the MCP agent allocates per
// container, win over TOML and the service's own environment variables.
func applyPorts(v reflect.Value) error {
	server := sectionField(v, "server")
	for env, key := range map[string]string{"PORT": "listen_addr", "PORT_GRPC": "grpc_addr"} {
		raw, ok := os.LookupEnv(env)
		if !ok || raw == "" {
			continue
		}
		port, err := strconv.Atoi(raw)
		if err != nil || port < 1 || port > 65535 {
			return fmt.Errorf("environment %s=%q: expected a port number 1-65535", env, raw)
		}
		if !server.IsValid() {
			return fmt.Errorf("environment %s is set but the configuration has no [server] section", env)
		}
		f := sectionField(server, key)
		if !f.IsValid() || f.Kind() != reflect.String {
			return fmt.Errorf("environment %s is set but [server] has no %s", env, key)
		}
		f.SetString(":" + strconv.Itoa(port))
	}
	return nil
}

func sectionField(v reflect.Value, name string) reflect.Value {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).IsExported() && tomlName(t.Field(i)) == name {
			return v.Field(i)
		}
	}
	return reflect.Value{}
}

// checkRequired walks sections and reports the first empty field tagged
// required:"true".
func checkRequired(v reflect.Value, path string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := tomlName(f)
		if !f.IsExported() || name == "" {
			continue
		}
		full := name
		if path != "" {
			full = path + "." + name
		}
		fv := v.Field(i)
		if f.Tag.Get("required") == "true" && fv.IsZero() {
			return fmt.Errorf("missing required field %s", full)
		}
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			if err := checkRequired(fv, full); err != nil {
				return err
			}
		}
	}
	return nil
}

type validator interface{ Validate() error }

func validate(v reflect.Value) error {
	for i := 0; i < v.NumField(); i++ {
		if !v.Type().Field(i).IsExported() {
			continue
		}
		if val, ok := v.Field(i).Interface().(validator); ok {
			if err := val.Validate(); err != nil {
				return err
			}
		}
	}
	if val, ok := v.Addr().Interface().(validator); ok {
		return val.Validate()
	}
	return nil
}
