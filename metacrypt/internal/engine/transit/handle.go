package transit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
)

// Operations are the generic request's operations on a transit mount,
// each answered by one typed method (see doc.go).
var Operations = []string{
	"create-key", "get-key", "list-keys", "update-key", "rotate-key", "delete-key", "export-key",
	"encrypt", "decrypt", "rewrap", "encrypt-batch", "decrypt-batch", "rewrap-batch", "datakey",
	"sign", "verify", "hmac", "verify-hmac",
}

// The generic request's data, by operation. Byte fields are standard
// base64 strings, decoded with errors naming the field.
type (
	createKeyJSON struct {
		Name       string `json:"name"`
		Type       string `json:"type"`
		Derived    bool   `json:"derived"`
		Exportable bool   `json:"exportable"`
	}
	configJSON struct {
		Name                 string `json:"name"`
		MinDecryptionVersion *int   `json:"min_decryption_version"`
		MinEncryptionVersion *int   `json:"min_encryption_version"`
		DeletionAllowed      *bool  `json:"deletion_allowed"`
	}
	nameJSON struct {
		Name string `json:"name"`
	}
	exportJSON struct {
		Name    string `json:"name"`
		Version int    `json:"version"`
	}
	encryptJSON struct {
		Key        string `json:"key"`
		KeyVersion int    `json:"key_version"`
		encryptItemJSON
	}
	encryptItemJSON struct {
		Plaintext      string `json:"plaintext"`
		AssociatedData string `json:"associated_data"`
		Context        string `json:"context"`
	}
	decryptJSON struct {
		Key string `json:"key"`
		decryptItemJSON
	}
	rewrapJSON struct {
		Key        string `json:"key"`
		KeyVersion int    `json:"key_version"`
		decryptItemJSON
	}
	decryptItemJSON struct {
		Ciphertext     string `json:"ciphertext"`
		AssociatedData string `json:"associated_data"`
		Context        string `json:"context"`
	}
	encryptBatchJSON struct {
		Key        string            `json:"key"`
		KeyVersion int               `json:"key_version"`
		Items      []encryptItemJSON `json:"items"`
	}
	decryptBatchJSON struct {
		Key        string            `json:"key"`
		KeyVersion int               `json:"key_version"`
		Items      []decryptItemJSON `json:"items"`
	}
	dataKeyJSON struct {
		Key              string `json:"key"`
		Bits             int    `json:"bits"`
		IncludePlaintext bool   `json:"include_plaintext"`
		AssociatedData   string `json:"associated_data"`
		Context          string `json:"context"`
	}
	signJSON struct {
		Key        string `json:"key"`
		Input      string `json:"input"`
		Prehashed  bool   `json:"prehashed"`
		KeyVersion int    `json:"key_version"`
	}
	verifyJSON struct {
		Key       string `json:"key"`
		Input     string `json:"input"`
		Prehashed bool   `json:"prehashed"`
		Signature string `json:"signature"`
	}
	hmacJSON struct {
		Key        string `json:"key"`
		Input      string `json:"input"`
		Algorithm  string `json:"algorithm"`
		KeyVersion int    `json:"key_version"`
	}
	verifyHMACJSON struct {
		Key       string `json:"key"`
		Input     string `json:"input"`
		Algorithm string `json:"algorithm"`
		HMAC      string `json:"hmac"`
	}
	resultJSON struct {
		Ciphertext string `json:"ciphertext,omitempty"`
		Plaintext  []byte `json:"plaintext,omitempty"`
		KeyVersion int    `json:"key_version,omitempty"`
		Error      string `json:"error,omitempty"`
		Field      string `json:"field,omitempty"`
	}
)

// Handle implements engine.Engine: one generic request, decoded into the
// typed request and answered by the same method as the typed API, so the
// two cannot differ in what they allow.
func (s *Service) Handle(ctx context.Context, r engine.Request) (map[string]any, error) {
	c, mount := r.Caller, r.Mount.Name
	switch r.Operation {
	case "create-key":
		var in createKeyJSON
		if err := decode(r, &in, &in.Name); err != nil {
			return nil, err
		}
		return toMap(s.CreateKey(ctx, c, mount, CreateKeyRequest(in)))
	case "get-key", "rotate-key", "delete-key":
		var in nameJSON
		if err := decode(r, &in, &in.Name); err != nil {
			return nil, err
		}
		switch r.Operation {
		case "get-key":
			return toMap(s.GetKey(ctx, c, mount, in.Name))
		case "rotate-key":
			return toMap(s.RotateKey(ctx, c, mount, in.Name))
		}
		return map[string]any{}, s.DeleteKey(ctx, c, mount, in.Name)
	case "list-keys":
		if err := decode(r, &struct{}{}, nil); err != nil {
			return nil, err
		}
		keys, err := s.ListKeys(ctx, c, mount)
		if keys == nil {
			keys = []string{}
		}
		return toMap(map[string]any{"keys": keys}, err)
	case "update-key":
		var in configJSON
		if err := decode(r, &in, &in.Name); err != nil {
			return nil, err
		}
		return toMap(s.UpdateKeyConfig(ctx, c, mount, KeyConfigRequest(in)))
	case "export-key":
		var in exportJSON
		if err := decode(r, &in, &in.Name); err != nil {
			return nil, err
		}
		return toMap(s.ExportKey(ctx, c, mount, in.Name, in.Version))
	case "encrypt":
		var in encryptJSON
		if err := decode(r, &in, &in.Key); err != nil {
			return nil, err
		}
		it, err := in.item("")
		if err != nil {
			return nil, err
		}
		return toMap(s.Encrypt(ctx, c, mount, EncryptRequest{Key: in.Key, KeyVersion: in.KeyVersion,
			Plaintext: it.Plaintext, AssociatedData: it.AssociatedData, Context: it.Context}))
	case "decrypt":
		var in decryptJSON
		if err := decode(r, &in, &in.Key); err != nil {
			return nil, err
		}
		it, err := in.item("")
		if err != nil {
			return nil, err
		}
		return toMap(s.Decrypt(ctx, c, mount, DecryptRequest{Key: in.Key, Ciphertext: it.Ciphertext, AssociatedData: it.AssociatedData, Context: it.Context}))
	case "rewrap":
		var in rewrapJSON
		if err := decode(r, &in, &in.Key); err != nil {
			return nil, err
		}
		it, err := in.item("")
		if err != nil {
			return nil, err
		}
		return toMap(s.Rewrap(ctx, c, mount, RewrapRequest{Key: in.Key, KeyVersion: in.KeyVersion,
			Ciphertext: it.Ciphertext, AssociatedData: it.AssociatedData, Context: it.Context}))
	case "encrypt-batch":
		var in encryptBatchJSON
		if err := decode(r, &in, &in.Key); err != nil {
			return nil, err
		}
		req := EncryptBatchRequest{Key: in.Key, KeyVersion: in.KeyVersion}
		for i, raw := range in.Items {
			it, err := raw.item(itemField(i))
			if err != nil {
				return nil, err
			}
			req.Items = append(req.Items, it)
		}
		return results(s.EncryptBatch(ctx, c, mount, req))
	case "decrypt-batch", "rewrap-batch":
		var in decryptBatchJSON
		if err := decode(r, &in, &in.Key); err != nil {
			return nil, err
		}
		var items []DecryptItem
		for i, raw := range in.Items {
			it, err := raw.item(itemField(i))
			if err != nil {
				return nil, err
			}
			items = append(items, it)
		}
		if r.Operation == "rewrap-batch" {
			return results(s.RewrapBatch(ctx, c, mount, RewrapBatchRequest{Key: in.Key, KeyVersion: in.KeyVersion, Items: items}))
		}
		if in.KeyVersion != 0 {
			return nil, apierr.InvalidField("key_version", "decryption uses the version the ciphertext names")
		}
		return results(s.DecryptBatch(ctx, c, mount, DecryptBatchRequest{Key: in.Key, Items: items}))
	case "datakey":
		var in dataKeyJSON
		if err := decode(r, &in, &in.Key); err != nil {
			return nil, err
		}
		ad, err := b64("associated_data", in.AssociatedData)
		if err != nil {
			return nil, err
		}
		kdc, err := b64("context", in.Context)
		if err != nil {
			return nil, err
		}
		return toMap(s.GenerateDataKey(ctx, c, mount, DataKeyRequest{Key: in.Key, Bits: in.Bits, IncludePlaintext: in.IncludePlaintext,
			AssociatedData: ad, Context: kdc}))
	case "sign":
		var in signJSON
		if err := decode(r, &in, &in.Key); err != nil {
			return nil, err
		}
		input, err := b64("input", in.Input)
		if err != nil {
			return nil, err
		}
		return toMap(s.Sign(ctx, c, mount, SignRequest{Key: in.Key, Input: input, Prehashed: in.Prehashed, KeyVersion: in.KeyVersion}))
	case "verify":
		var in verifyJSON
		if err := decode(r, &in, &in.Key); err != nil {
			return nil, err
		}
		input, err := b64("input", in.Input)
		if err != nil {
			return nil, err
		}
		ok, err := s.Verify(ctx, c, mount, VerifyRequest{Key: in.Key, Input: input, Prehashed: in.Prehashed, Signature: in.Signature})
		return toMap(map[string]any{"valid": ok}, err)
	case "hmac":
		var in hmacJSON
		if err := decode(r, &in, &in.Key); err != nil {
			return nil, err
		}
		input, err := b64("input", in.Input)
		if err != nil {
			return nil, err
		}
		return toMap(s.HMAC(ctx, c, mount, HMACRequest{Key: in.Key, Input: input, Algorithm: in.Algorithm, KeyVersion: in.KeyVersion}))
	case "verify-hmac":
		var in verifyHMACJSON
		if err := decode(r, &in, &in.Key); err != nil {
			return nil, err
		}
		input, err := b64("input", in.Input)
		if err != nil {
			return nil, err
		}
		ok, err := s.VerifyHMAC(ctx, c, mount, VerifyHMACRequest{Key: in.Key, Input: input, Algorithm: in.Algorithm, HMAC: in.HMAC})
		return toMap(map[string]any{"valid": ok}, err)
	}
	return nil, apierr.InvalidField("operation", "unknown operation %q for a transit mount (%s)", r.Operation, strings.Join(Operations, ", "))
}

func (in encryptItemJSON) item(prefix string) (EncryptItem, error) {
	var it EncryptItem
	var err error
	if it.Plaintext, err = b64(prefix+"plaintext", in.Plaintext); err != nil {
		return it, err
	}
	if it.AssociatedData, err = b64(prefix+"associated_data", in.AssociatedData); err != nil {
		return it, err
	}
	it.Context, err = b64(prefix+"context", in.Context)
	return it, err
}

func (in decryptItemJSON) item(prefix string) (DecryptItem, error) {
	it := DecryptItem{Ciphertext: in.Ciphertext}
	var err error
	if it.AssociatedData, err = b64(prefix+"associated_data", in.AssociatedData); err != nil {
		return it, err
	}
	it.Context, err = b64(prefix+"context", in.Context)
	return it, err
}

// b64 decodes a standard base64 field.
func b64(field, s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, apierr.InvalidField(field, "not standard base64: %v", err)
	}
	return b, nil
}

func results(rs []BatchResult, err error) (map[string]any, error) {
	if err != nil {
		return nil, err
	}
	out := make([]resultJSON, len(rs))
	for i, r := range rs {
		out[i] = resultJSON{Ciphertext: r.Ciphertext, Plaintext: r.Plaintext, KeyVersion: r.KeyVersion}
		if r.Err != nil {
			d := apierr.Describe(r.Err)
			out[i].Error, out[i].Field = d.Message, d.Field
		}
	}
	return toMap(map[string]any{"results": out}, nil)
}

// decode reads the request's data into dst strictly (unknown fields are
// errors). The request's path may name the key ("key/<name>") instead of
// the data field target; both naming different keys is an error.
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
	v, ok := strings.CutPrefix(r.Path, "key/")
	if !ok || v == "" {
		return apierr.InvalidField("path", "want key/<name>, got %q", r.Path)
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
