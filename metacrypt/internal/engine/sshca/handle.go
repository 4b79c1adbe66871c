package sshca

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
)

// The ACL resources of an SSH mount.
const (
	resourceCA       = "ca"
	resourceProfiles = "profiles"
	resourceCerts    = "certs"
	resourceKRL      = "krl"
)

func resourceProfile(name string) string { return "profile/" + name }

// Operations are the generic request's operations on an SSH mount, each
// answered by the typed method of the same name (see doc.go).
var Operations = []string{
	"generate-ca", "get-ca", "krl",
	"create-profile", "update-profile", "get-profile", "list-profiles", "delete-profile",
	"sign", "get", "list", "revoke",
}

// Handle implements engine.Engine: one generic request, decoded into the
// typed request and answered by the same method as the typed API.
func (s *Service) Handle(ctx context.Context, r engine.Request) (map[string]any, error) {
	c, mount := r.Caller, r.Mount.Name
	switch r.Operation {
	case "generate-ca":
		var in CARequest
		if err := decode(r, "", &in, nil); err != nil {
			return nil, err
		}
		return toMap(s.GenerateCA(ctx, c, mount, in))
	case "get-ca":
		if err := decode(r, "", &struct{}{}, nil); err != nil {
			return nil, err
		}
		return toMap(s.GetCA(ctx, mount))
	case "krl":
		if err := decode(r, "", &struct{}{}, nil); err != nil {
			return nil, err
		}
		return toMap(s.KRL(ctx, mount))
	case "create-profile", "update-profile":
		var in ProfileRequest
		if err := decode(r, "profile/", &in, &in.Name); err != nil {
			return nil, err
		}
		if r.Operation == "create-profile" {
			return profileMap(s.CreateProfile(ctx, c, mount, in))
		}
		return profileMap(s.UpdateProfile(ctx, c, mount, in))
	case "get-profile", "delete-profile":
		var in struct {
			Name string `json:"name"`
		}
		if err := decode(r, "profile/", &in, &in.Name); err != nil {
			return nil, err
		}
		if r.Operation == "get-profile" {
			return profileMap(s.GetProfile(ctx, c, mount, in.Name))
		}
		return map[string]any{}, s.DeleteProfile(ctx, c, mount, in.Name)
	case "list-profiles":
		if err := decode(r, "", &struct{}{}, nil); err != nil {
			return nil, err
		}
		list, err := s.ListProfiles(ctx, c, mount)
		if err != nil {
			return nil, err
		}
		out := make([]profileJSON, len(list))
		for i, p := range list {
			out[i] = profileView(p)
		}
		return toMap(map[string]any{"profiles": out}, nil)
	case "sign":
		var in SignRequest
		if err := decode(r, "profile/", &in, &in.Profile); err != nil {
			return nil, err
		}
		return toMap(s.Sign(ctx, c, mount, in))
	case "get":
		var in struct {
			Serial string `json:"serial"`
		}
		if err := decode(r, "cert/", &in, &in.Serial); err != nil {
			return nil, err
		}
		cert, err := s.GetCertificate(ctx, c, mount, in.Serial)
		return toMap(map[string]any{"certificate": cert}, err)
	case "list":
		var in ListRequest
		if err := decode(r, "", &in, nil); err != nil {
			return nil, err
		}
		list, err := s.ListCertificates(ctx, c, mount, in)
		if list == nil {
			list = []Certificate{}
		}
		return toMap(map[string]any{"certificates": list}, err)
	case "revoke":
		var in RevokeRequest
		if err := decode(r, "cert/", &in, &in.Serial); err != nil {
			return nil, err
		}
		return toMap(s.Revoke(ctx, c, mount, in))
	}
	return nil, apierr.InvalidField("operation", "unknown operation %q for an SSH mount (%s)", r.Operation, strings.Join(Operations, ", "))
}

// decode reads the request's data into dst strictly (unknown fields are
// errors). When the operation has a resource (prefix "profile/" or
// "cert/"), the request's path may name it instead of the data field
// target; both naming different things is an error.
func decode(r engine.Request, prefix string, dst any, target *string) error {
	b, err := json.Marshal(r.Data)
	if err != nil {
		return apierr.InvalidField("data", "%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return apierr.InvalidField("data", "%v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if r.Path == "" {
		return nil
	}
	if target == nil {
		return apierr.InvalidField("path", "operation %s takes no path", r.Operation)
	}
	v, ok := strings.CutPrefix(r.Path, prefix)
	if !ok || v == "" {
		return apierr.InvalidField("path", "want %s<name>, got %q", prefix, r.Path)
	}
	if *target != "" && *target != v {
		return apierr.InvalidField("path", "names %q but data names %q", v, *target)
	}
	*target = v
	return nil
}

// toMap turns a typed result into the generic response's data.
func toMap[T any](v T, err error) (map[string]any, error) {
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(b, &out)
}

// profileJSON is a profile with durations as ParseDuration reads them.
type profileJSON struct {
	Profile
	MaxTTL     string `json:"max_ttl"`
	DefaultTTL string `json:"default_ttl"`
}

func profileView(p Profile) profileJSON {
	return profileJSON{Profile: p, MaxTTL: pki.FormatDuration(p.MaxTTL), DefaultTTL: pki.FormatDuration(p.DefaultTTL)}
}

func profileMap(p Profile, err error) (map[string]any, error) {
	return toMap(map[string]any{"profile": profileView(p)}, err)
}
