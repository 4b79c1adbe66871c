package manifest

import (
	"strings"
	"testing"

	"git.metacircular.net/metacircular/mcr/internal/oci"
)

const (
	cfg   = `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + hex64 + `","size":2}`
	hex64 = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
)

func TestParse(t *testing.T) {
	good := []struct{ ct, body, mt string }{
		{oci.MediaTypeImageManifest, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `,"layers":[]}`, oci.MediaTypeImageManifest},
		{"", `{"schemaVersion":2,"config":` + cfg + `,"layers":[]}`, oci.MediaTypeImageManifest},
		{oci.MediaTypeImageIndex, `{"schemaVersion":2,"manifests":[]}`, oci.MediaTypeImageIndex},
		{oci.MediaTypeDockerList + "; charset=utf-8", `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:` + hex64 + `","size":7,"platform":{"os":"linux","architecture":"arm64"}}]}`, oci.MediaTypeDockerList},
	}
	for i, g := range good {
		m, err := Parse(g.ct, []byte(g.body))
		if err != nil {
			t.Errorf("good %d: %v", i, err)
			continue
		}
		if m.MediaType != g.mt {
			t.Errorf("good %d: media type %s", i, m.MediaType)
		}
	}
	bad := []struct{ ct, body, want string }{
		{"", `not json`, "valid JSON"},
		{"", `{"schemaVersion":1,"fsLayers":[{}]}`, "schema 1"},
		{"", `{"schemaVersion":3,"config":` + cfg + `}`, "schemaVersion"},
		{oci.MediaTypeImageIndex, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":` + cfg + `}`, "does not match"},
		{"", `{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1}}`, "config"},
		{"", `{"schemaVersion":2,"config":` + cfg + `,"layers":[{"mediaType":"x","digest":"sha256:` + hex64 + `","size":-1}]}`, "negative"},
		{"", `{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:` + hex64 + `","size":2,"data":"e30="}}`, ""},
		{"", `{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:` + hex64 + `","size":2,"data":"e3s="}}`, "data"},
		{"", `{"schemaVersion":2,"mediaType":"application/vnd.example+json","config":` + cfg + `}`, "unsupported"},
		{"", `{"schemaVersion":2,"config":` + cfg + `} {}`, "after"},
	}
	for i, b := range bad {
		_, err := Parse(b.ct, []byte(b.body))
		if b.want == "" {
			if err != nil {
				t.Errorf("bad %d (valid data field): %v", i, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("bad %d: err %v, want %q", i, err, b.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(oci.MediaTypeImageManifest, []byte(`{"schemaVersion":2,"config":`+cfg+`,"layers":[`+cfg+`],"subject":`+cfg+`}`))
	f.Add(oci.MediaTypeImageIndex, []byte(`{"schemaVersion":2,"manifests":[`+cfg+`]}`))
	f.Add("", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":`+cfg+`,"layers":[]}`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		m, err := Parse(ct, body)
		if err != nil {
			if _, ok := oci.AsError(err); !ok {
				t.Fatalf("error of no spec code: %v", err)
			}
			return
		}
		if !oci.IsManifestType(m.MediaType) {
			t.Fatalf("accepted media type %q", m.MediaType)
		}
		blobs, foreign, children := m.Refs()
		for _, d := range append(append(blobs, foreign...), children...) {
			if _, err := oci.ParseDigest(d); err != nil {
				t.Fatalf("accepted reference %q: %v", d, err)
			}
		}
	})
}
