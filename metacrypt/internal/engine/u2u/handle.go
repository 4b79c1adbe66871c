package u2u

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// Operations are the generic request's operations on a u2u mount, each
// answered by one typed method (see doc.go).
var Operations = []string{"create-key", "rotate-key", "get-key", "list-keys", "send", "open"}

// Handle implements engine.Engine: one generic request, decoded into the
// typed request and answered by the same method as the typed API. Byte
// fields are standard base64 strings.
func (s *Service) Handle(ctx context.Context, r engine.Request) (map[string]any, error) {
	c, mount := r.Caller, r.Mount.Name
	switch r.Operation {
	case "create-key", "rotate-key":
		if err := decode(r, &struct{}{}, nil); err != nil {
			return nil, err
		}
		if r.Operation == "create-key" {
			return toMap(s.CreateKey(ctx, c, mount))
		}
		return toMap(s.RotateKey(ctx, c, mount))
	case "get-key":
		var in struct {
			Username string `json:"username"`
		}
		if err := decode(r, &in, &in.Username); err != nil {
			return nil, err
		}
		return toMap(s.GetKey(ctx, c, mount, in.Username))
	case "list-keys":
		if err := decode(r, &struct{}{}, nil); err != nil {
			return nil, err
		}
		keys, err := s.ListKeys(ctx, c, mount)
		return toMap(map[string]any{"keys": keys}, err)
	case "send":
		var in struct {
			Recipient      string `json:"recipient"`
			Plaintext      string `json:"plaintext"`
			AssociatedData string `json:"associated_data"`
		}
		if err := decode(r, &in, &in.Recipient); err != nil {
			return nil, err
		}
		pt, err := b64("plaintext", in.Plaintext)
		if err != nil {
			return nil, err
		}
		ad, err := b64("associated_data", in.AssociatedData)
		if err != nil {
			return nil, err
		}
		return toMap(s.Send(ctx, c, mount, SendRequest{Recipient: in.Recipient, Plaintext: pt, AssociatedData: ad}))
	case "open":
		var in struct {
			Message        string `json:"message"`
			AssociatedData string `json:"associated_data"`
		}
		if err := decode(r, &in, nil); err != nil {
			return nil, err
		}
		msg, err := b64("message", in.Message)
		if err != nil {
			return nil, err
		}
		ad, err := b64("associated_data", in.AssociatedData)
		if err != nil {
			return nil, err
		}
		return toMap(s.Open(ctx, c, mount, OpenRequest{Message: msg, AssociatedData: ad}))
	}
	return nil, apierr.InvalidField("operation", "unknown operation %q for a u2u mount (%s)", r.Operation, strings.Join(Operations, ", "))
}

// b64 decodes a standard base64 field.
func b64(field, s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, apierr.InvalidField(field, "not standard base64: %v", err)
	}
	return b, nil
}

// decode reads the request's data into dst strictly (unknown fields are
// errors). The request's path may name the user ("user/<name>") instead
// of the data field target; both naming different users is an error.
func decode(r engine.Request, dst any, target *string) error {
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
	v, ok := strings.CutPrefix(r.Path, "user/")
	if !ok || v == "" {
		return apierr.InvalidField("path", "want user/<name>, got %q", r.Path)
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
