package sshca

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// CertType is what a certificate authenticates: a user or a host.
type CertType string

// The certificate types.
const (
	UserCert CertType = "user"
	HostCert CertType = "host"
)

// The OpenSSH critical options a profile may set.
const (
	OptionForceCommand  = "force-command"
	OptionSourceAddress = "source-address"
)

// Extensions are the user-certificate extensions OpenSSH defines
// (PROTOCOL.certkeys); others must be vendor extensions ("name@domain").
var Extensions = []string{
	"no-touch-required", "permit-X11-forwarding", "permit-agent-forwarding",
	"permit-port-forwarding", "permit-pty", "permit-user-rc",
}

// KeyTypes are the public key types a profile may certify, by their
// OpenSSH names; a profile allows all of them unless it lists some.
var KeyTypes = []string{
	ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSA,
	ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256,
}

// The profile defaults and bounds.
const (
	DefaultUserMaxTTL     = 24 * time.Hour
	DefaultUserDefaultTTL = time.Hour
	DefaultHostMaxTTL     = 90 * 24 * time.Hour
	DefaultHostDefaultTTL = 30 * 24 * time.Hour
	// DefaultMinRSABits is also the least a profile may set.
	DefaultMinRSABits = 2048
	maxRSABits        = 16384
	maxPrincipals     = 256
	maxPatterns       = 256
)

// UsernameTemplate in a principal pattern stands for the caller's MCIAS
// username, matched literally.
const UsernameTemplate = "{{username}}"

// ProfileRequest creates or replaces a signing profile. Durations are
// strings like "8h" or "30d".
type ProfileRequest struct {
	Name     string `json:"name"`
	CertType string `json:"cert_type"`
	// AllowedPrincipals are patterns a requested principal must match:
	// "*" stands for any run of characters and {{username}} for the
	// caller's username, so ["{{username}}"] lets users have only their
	// own name.
	AllowedPrincipals []string `json:"allowed_principals"`
	// DefaultPrincipals (patterns without "*") are signed when a request
	// names none.
	DefaultPrincipals []string `json:"default_principals"`
	MaxTTL            string   `json:"max_ttl"`
	DefaultTTL        string   `json:"default_ttl"`
	// AllowedExtensions may be requested; DefaultExtensions are signed
	// when a request names none (and are allowed).
	AllowedExtensions []string `json:"allowed_extensions"`
	DefaultExtensions []string `json:"default_extensions"`
	// CriticalOptions are put in every certificate and cannot be changed
	// by a request; AllowedCriticalOptions may be set by a request when
	// the profile does not set them.
	CriticalOptions        map[string]string `json:"critical_options"`
	AllowedCriticalOptions []string          `json:"allowed_critical_options"`
	KeyTypes               []string          `json:"key_types"`
	MinRSABits             int               `json:"min_rsa_bits"`
}

// Profile is a validated signing profile.
type Profile struct {
	Name                   string            `json:"name"`
	CertType               CertType          `json:"cert_type"`
	AllowedPrincipals      []string          `json:"allowed_principals"`
	DefaultPrincipals      []string          `json:"default_principals"`
	MaxTTL                 time.Duration     `json:"max_ttl"`
	DefaultTTL             time.Duration     `json:"default_ttl"`
	AllowedExtensions      []string          `json:"allowed_extensions"`
	DefaultExtensions      []string          `json:"default_extensions"`
	CriticalOptions        map[string]string `json:"critical_options"`
	AllowedCriticalOptions []string          `json:"allowed_critical_options"`
	KeyTypes               []string          `json:"key_types"`
	MinRSABits             int               `json:"min_rsa_bits"`
	CreatedAt              time.Time         `json:"created_at"`
	UpdatedAt              time.Time         `json:"updated_at"`
}

var profileNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func validateProfileName(field, name string) error {
	if !profileNameRE.MatchString(name) {
		return apierr.InvalidField(field, "%q is not a valid profile name (lower-case letters, digits and hyphens, 1-63 characters)", name)
	}
	return nil
}

// parseProfile validates a request into a profile; errors name the field.
func parseProfile(r ProfileRequest) (Profile, error) {
	p := Profile{Name: r.Name, MinRSABits: r.MinRSABits}
	if err := validateProfileName("name", r.Name); err != nil {
		return Profile{}, err
	}
	switch CertType(r.CertType) {
	case UserCert, HostCert:
		p.CertType = CertType(r.CertType)
	default:
		return Profile{}, apierr.InvalidField("cert_type", "must be user or host, got %q", r.CertType)
	}
	if len(r.AllowedPrincipals) == 0 {
		return Profile{}, apierr.InvalidField("allowed_principals", "at least one pattern is required")
	}
	var err error
	if p.AllowedPrincipals, err = parsePatterns("allowed_principals", r.AllowedPrincipals, true); err != nil {
		return Profile{}, err
	}
	if p.DefaultPrincipals, err = parsePatterns("default_principals", r.DefaultPrincipals, false); err != nil {
		return Profile{}, err
	}
	maxTTL, defTTL := DefaultUserMaxTTL, DefaultUserDefaultTTL
	if p.CertType == HostCert {
		maxTTL, defTTL = DefaultHostMaxTTL, DefaultHostDefaultTTL
	}
	if p.MaxTTL, err = pki.ParseDuration("max_ttl", r.MaxTTL); err != nil {
		return Profile{}, err
	}
	if p.MaxTTL == 0 {
		p.MaxTTL = maxTTL
	}
	if p.DefaultTTL, err = pki.ParseDuration("default_ttl", r.DefaultTTL); err != nil {
		return Profile{}, err
	}
	if p.DefaultTTL == 0 {
		p.DefaultTTL = min(defTTL, p.MaxTTL)
	}
	if p.DefaultTTL > p.MaxTTL {
		return Profile{}, apierr.InvalidField("default_ttl", "%s is above max_ttl %s", pki.FormatDuration(p.DefaultTTL), pki.FormatDuration(p.MaxTTL))
	}
	if p.CertType == HostCert {
		// OpenSSH defines no extensions or critical options for hosts.
		for _, f := range []struct {
			name string
			n    int
		}{
			{"allowed_extensions", len(r.AllowedExtensions)}, {"default_extensions", len(r.DefaultExtensions)},
			{"critical_options", len(r.CriticalOptions)}, {"allowed_critical_options", len(r.AllowedCriticalOptions)},
		} {
			if f.n > 0 {
				return Profile{}, apierr.InvalidField(f.name, "host certificates carry no extensions or critical options")
			}
		}
	}
	if p.DefaultExtensions, err = parseExtensions("default_extensions", r.DefaultExtensions); err != nil {
		return Profile{}, err
	}
	if p.AllowedExtensions, err = parseExtensions("allowed_extensions", r.AllowedExtensions); err != nil {
		return Profile{}, err
	}
	if len(p.AllowedExtensions) == 0 {
		p.AllowedExtensions = p.DefaultExtensions
	}
	for i, e := range p.DefaultExtensions {
		if !slices.Contains(p.AllowedExtensions, e) {
			return Profile{}, apierr.InvalidField(fmt.Sprintf("default_extensions[%d]", i), "%q is not among allowed_extensions", e)
		}
	}
	if p.CriticalOptions, err = parseCriticalOptions("critical_options", r.CriticalOptions); err != nil {
		return Profile{}, err
	}
	for i, o := range r.AllowedCriticalOptions {
		if o != OptionForceCommand && o != OptionSourceAddress {
			return Profile{}, apierr.InvalidField(fmt.Sprintf("allowed_critical_options[%d]", i), "unknown critical option %q (%s, %s)", o, OptionForceCommand, OptionSourceAddress)
		}
	}
	p.AllowedCriticalOptions = sortedUnique(r.AllowedCriticalOptions, strings.Compare)
	if len(r.KeyTypes) == 0 {
		p.KeyTypes = slices.Clone(KeyTypes)
	}
	for i, k := range r.KeyTypes {
		if !slices.Contains(KeyTypes, k) {
			return Profile{}, apierr.InvalidField(fmt.Sprintf("key_types[%d]", i), "unknown key type %q (%s)", k, strings.Join(KeyTypes, ", "))
		}
		if !slices.Contains(p.KeyTypes, k) {
			p.KeyTypes = append(p.KeyTypes, k)
		}
	}
	if p.MinRSABits == 0 {
		p.MinRSABits = DefaultMinRSABits
	}
	if p.MinRSABits < DefaultMinRSABits || p.MinRSABits > maxRSABits {
		return Profile{}, apierr.InvalidField("min_rsa_bits", "must be %d..%d, got %d", DefaultMinRSABits, maxRSABits, p.MinRSABits)
	}
	return p, nil
}

var (
	// principalRE: what a principal may contain (user names, host names,
	// IP addresses); no spaces, commas or wildcards, which mean something
	// in sshd's principal and pattern lists.
	principalRE = regexp.MustCompile(`^[A-Za-z0-9._@+:%-]{1,255}$`)
	// patternRE: a principal pattern, with "*" and the template.
	patternRE = regexp.MustCompile(`^([A-Za-z0-9._@+:%*-]|\{\{username\}\})+$`)
)

func parsePatterns(field string, in []string, wildcards bool) ([]string, error) {
	if len(in) > maxPatterns {
		return nil, apierr.InvalidField(field, "at most %d patterns", maxPatterns)
	}
	out := make([]string, 0, len(in))
	for i, p := range in {
		if len(p) > 255 || !patternRE.MatchString(p) || (!wildcards && strings.Contains(p, "*")) {
			what := "letters, digits, ._@+:%- and " + UsernameTemplate
			if wildcards {
				what += " or *"
			}
			return nil, apierr.InvalidField(fmt.Sprintf("%s[%d]", field, i), "%q is not a principal pattern (%s)", p, what)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func parseExtensions(field string, in []string) ([]string, error) {
	for i, e := range in {
		vendor := strings.Count(e, "@") == 1 && principalRE.MatchString(e) && !strings.HasPrefix(e, "@") && !strings.HasSuffix(e, "@")
		if !slices.Contains(Extensions, e) && !vendor {
			return nil, apierr.InvalidField(fmt.Sprintf("%s[%d]", field, i), "unknown extension %q (%s, or name@domain)", e, strings.Join(Extensions, ", "))
		}
	}
	return sortedUnique(in, strings.Compare), nil
}

// parseCriticalOptions validates force-command and source-address, the
// latter normalized to a comma-separated list of CIDR prefixes.
func parseCriticalOptions(field string, in map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(in)) {
		v := in[name]
		f := field + "." + name
		switch name {
		case OptionForceCommand:
			if v == "" || len(v) > 4096 || strings.ContainsAny(v, "\x00\n\r") {
				return nil, apierr.InvalidField(f, "must be a command line of 1-4096 characters")
			}
			out[name] = v
		case OptionSourceAddress:
			list, err := parseSourceAddress(f, v)
			if err != nil {
				return nil, err
			}
			out[name] = list
		default:
			return nil, apierr.InvalidField(f, "unknown critical option %q (%s, %s)", name, OptionForceCommand, OptionSourceAddress)
		}
	}
	return out, nil
}

func parseSourceAddress(field, v string) (string, error) {
	var out []string
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		p, err := netip.ParsePrefix(part)
		if err != nil {
			a, aerr := netip.ParseAddr(part)
			if aerr != nil || a.Zone() != "" {
				return "", apierr.InvalidField(field, "%q is not an address or CIDR prefix", part)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked().String())
	}
	return strings.Join(out, ","), nil
}

// CreateProfile adds a signing profile (manage on "profile/<name>").
func (s *Service) CreateProfile(ctx context.Context, c engine.Caller, mount string, r ProfileRequest) (Profile, error) {
	return s.putProfile(ctx, c, mount, r, false)
}

// UpdateProfile replaces a profile's settings as a whole (manage on
// "profile/<name>"); certificates already signed are unaffected.
func (s *Service) UpdateProfile(ctx context.Context, c engine.Caller, mount string, r ProfileRequest) (Profile, error) {
	return s.putProfile(ctx, c, mount, r, true)
}

func (s *Service) putProfile(ctx context.Context, c engine.Caller, mount string, r ProfileRequest, update bool) (Profile, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return Profile{}, err
	}
	if err := validateProfileName("name", r.Name); err != nil {
		return Profile{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpManage, resourceProfile(r.Name)); err != nil {
		return Profile{}, err
	}
	p, err := parseProfile(r)
	if err != nil {
		return Profile{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := loadProfile(ctx, m, r.Name)
	switch {
	case err == nil && !update:
		return Profile{}, wrapf(engine.ErrConflict, "profile %s exists", r.Name)
	case err != nil && (update || !errors.Is(err, engine.ErrNotFound)):
		return Profile{}, err
	}
	p.CreatedAt, p.UpdatedAt = s.now(), s.now()
	if update {
		p.CreatedAt = old.CreatedAt
	}
	if err := putJSON(ctx, m.Storage, kindProfile, p.Name, p); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// GetProfile returns a profile (read on "profile/<name>").
func (s *Service) GetProfile(ctx context.Context, c engine.Caller, mount, name string) (Profile, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return Profile{}, err
	}
	if err := validateProfileName("name", name); err != nil {
		return Profile{}, err
	}
	if err := s.authorize(ctx, c, m, policy.OpRead, resourceProfile(name)); err != nil {
		return Profile{}, err
	}
	return loadProfile(ctx, m, name)
}

// ListProfiles returns every profile, by name (read on "profiles").
func (s *Service) ListProfiles(ctx context.Context, c engine.Caller, mount string) ([]Profile, error) {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, m, policy.OpRead, resourceProfiles); err != nil {
		return nil, err
	}
	names, err := m.Storage.List(ctx, kindProfile)
	if err != nil {
		return nil, err
	}
	out := make([]Profile, 0, len(names))
	for _, n := range names {
		p, err := loadProfile(ctx, m, n)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// DeleteProfile removes a profile (manage on "profile/<name>");
// certificates it signed keep their records.
func (s *Service) DeleteProfile(ctx context.Context, c engine.Caller, mount, name string) error {
	m, err := s.mount(ctx, mount)
	if err != nil {
		return err
	}
	if err := validateProfileName("name", name); err != nil {
		return err
	}
	if err := s.authorize(ctx, c, m, policy.OpManage, resourceProfile(name)); err != nil {
		return err
	}
	if _, err := loadProfile(ctx, m, name); err != nil {
		return err
	}
	return m.Storage.Delete(ctx, kindProfile, name)
}

func loadProfile(ctx context.Context, m engine.Mount, name string) (Profile, error) {
	var p Profile
	if err := getJSON(ctx, m.Storage, kindProfile, name, &p); err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			return Profile{}, wrapf(engine.ErrNotFound, "profile %s", name)
		}
		return Profile{}, err
	}
	return p, nil
}

// principalAllowed reports whether the profile's patterns admit the
// principal for the username.
func (p Profile) principalAllowed(principal, username string) bool {
	for _, pat := range p.AllowedPrincipals {
		if matchPattern(pat, principal, username) {
			return true
		}
	}
	return false
}

// matchPattern matches s against a pattern where "*" is any run of
// characters and {{username}} is the username, literally (a username
// containing "*" matches only itself).
func matchPattern(pattern, s, username string) bool {
	var re strings.Builder
	re.WriteString("^")
	for i, part := range strings.Split(pattern, UsernameTemplate) {
		if i > 0 {
			if username == "" {
				return false
			}
			re.WriteString(regexp.QuoteMeta(username))
		}
		for j, lit := range strings.Split(part, "*") {
			if j > 0 {
				re.WriteString(".*")
			}
			re.WriteString(regexp.QuoteMeta(lit))
		}
	}
	re.WriteString("$")
	ok, err := regexp.MatchString(re.String(), s)
	return err == nil && ok
}

// expand replaces the template in a default principal.
func expand(pattern, username string) string {
	return strings.ReplaceAll(pattern, UsernameTemplate, username)
}
