// Package manifest parses and checks the manifests MCR stores: OCI image
// manifests and indexes and Docker v2 schema 2 manifests and manifest
// lists (schema 1 is refused). Parse finds what a manifest references —
// config and layers that must be in the repository, foreign layers that
// need not be, index children, the subject — for the store to check and
// the garbage collector to follow.
package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"

	"github.com/opencontainers/go-digest"

	"git.metacircular.net/metacircular/mcr/internal/oci"
)

// MaxSize is the largest manifest accepted (the spec asks registries to
// take at least 4 MB; the conformance suite pushes a 3.9 MB one).
const MaxSize = 4 << 20

// Platform is an index entry's platform.
type Platform struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
}

// String is "os/arch[/variant]".
func (p *Platform) String() string {
	if p == nil {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Descriptor is a content descriptor.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Data         []byte            `json:"data,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
}

// raw is every field MCR reads from any of the four types.
type raw struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *Descriptor       `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Manifests     []Descriptor      `json:"manifests"`
	Subject       *Descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
	FSLayers      json.RawMessage   `json:"fsLayers"`
}

// Manifest is a parsed manifest.
type Manifest struct {
	MediaType    string
	ArtifactType string
	Config       *Descriptor
	Layers       []Descriptor
	Manifests    []Descriptor
	Subject      *Descriptor
	Annotations  map[string]string
}

// IsIndex reports whether m lists other manifests.
func (m *Manifest) IsIndex() bool { return oci.IsIndex(m.MediaType) }

// ConfigMediaType is the config's media type ("" for an index).
func (m *Manifest) ConfigMediaType() string {
	if m.Config == nil {
		return ""
	}
	return m.Config.MediaType
}

// SubjectDigest is the subject's digest ("").
func (m *Manifest) SubjectDigest() string {
	if m.Subject == nil {
		return ""
	}
	return m.Subject.Digest
}

// Refs splits what m references: blobs the repository must have, foreign
// blobs (layers with urls, served elsewhere) and child manifests.
func (m *Manifest) Refs() (blobs, foreign, children []string) {
	if m.Config != nil {
		blobs = append(blobs, m.Config.Digest)
	}
	for _, l := range m.Layers {
		if len(l.URLs) > 0 {
			foreign = append(foreign, l.Digest)
		} else {
			blobs = append(blobs, l.Digest)
		}
	}
	for _, c := range m.Manifests {
		children = append(children, c.Digest)
	}
	return dedupe(blobs), dedupe(foreign), dedupe(children)
}

func dedupe(l []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range l {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func invalid(format string, args ...any) error {
	return oci.NewError(oci.ErrManifestInvalid, fmt.Sprintf(format, args...))
}

// Parse checks body as a manifest pushed with contentType (parameters
// ignored) and returns what it holds. The body's mediaType wins; a
// Content-Type naming another manifest type is an error, as is an
// unsupported type, a schema version other than 2 or a malformed
// descriptor.
func Parse(contentType string, body []byte) (*Manifest, error) {
	if len(body) > MaxSize {
		return nil, oci.NewError(oci.ErrSizeInvalid, fmt.Sprintf("manifest larger than %d bytes", MaxSize)).WithStatus(413)
	}
	var r raw
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&r); err != nil {
		return nil, invalid("manifest is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, invalid("manifest has data after the JSON object")
	}
	ct := ""
	if contentType != "" {
		if mt, _, err := mime.ParseMediaType(contentType); err == nil {
			ct = mt
		}
	}
	mt := r.MediaType
	switch {
	case mt != "" && oci.IsManifestType(ct) && ct != mt:
		return nil, invalid("Content-Type %s does not match the manifest's mediaType %s", ct, mt)
	case mt == "" && oci.IsManifestType(ct):
		mt = ct
	case mt == "" && r.Manifests != nil:
		mt = oci.MediaTypeImageIndex
	case mt == "":
		mt = oci.MediaTypeImageManifest
	}
	if mt == oci.MediaTypeDockerSchema1 || mt == oci.MediaTypeDockerSchema1Signed || len(r.FSLayers) > 0 {
		return nil, invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
	}
	if !oci.IsManifestType(mt) {
		return nil, invalid("unsupported manifest media type %q", mt)
	}
	if r.SchemaVersion == nil || *r.SchemaVersion != 2 {
		return nil, invalid("schemaVersion must be 2")
	}
	m := &Manifest{MediaType: mt, ArtifactType: r.ArtifactType, Subject: r.Subject, Annotations: r.Annotations}
	if oci.IsIndex(mt) {
		if r.Config != nil || r.Layers != nil {
			return nil, invalid("an index has no config or layers")
		}
		if r.Manifests == nil {
			return nil, invalid("an index needs a manifests list")
		}
		for i := range r.Manifests {
			if err := checkDescriptor(&r.Manifests[i], fmt.Sprintf("manifests[%d]", i)); err != nil {
				return nil, err
			}
		}
		m.Manifests = r.Manifests
	} else {
		if r.Manifests != nil {
			return nil, invalid("an image manifest has no manifests list")
		}
		if r.Config == nil {
			return nil, invalid("an image manifest needs a config")
		}
		if err := checkDescriptor(r.Config, "config"); err != nil {
			return nil, err
		}
		for i := range r.Layers {
			if err := checkDescriptor(&r.Layers[i], fmt.Sprintf("layers[%d]", i)); err != nil {
				return nil, err
			}
		}
		m.Config, m.Layers = r.Config, r.Layers
	}
	if r.Subject != nil {
		if err := checkDescriptor(r.Subject, "subject"); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// checkDescriptor validates a descriptor: a media type, a supported
// digest, a size that is not negative, and embedded data (if any) that
// matches both.
func checkDescriptor(d *Descriptor, where string) error {
	if d.MediaType == "" {
		return invalid("%s: mediaType is required", where)
	}
	dg, err := oci.ParseDigest(d.Digest)
	if err != nil {
		return invalid("%s: %v", where, err)
	}
	if d.Size < 0 {
		return invalid("%s: size is negative", where)
	}
	if d.Data != nil {
		if int64(len(d.Data)) != d.Size {
			return invalid("%s: data has %d bytes, size says %d", where, len(d.Data), d.Size)
		}
		if dg.Algorithm().FromBytes(d.Data) != dg {
			return invalid("%s: data does not match the digest", where)
		}
	}
	return nil
}

// DigestFor is the digest of body with alg (the algorithm of the digest a
// manifest was pushed by; sha256 for a tag).
func DigestFor(alg digest.Algorithm, body []byte) digest.Digest { return alg.FromBytes(body) }
