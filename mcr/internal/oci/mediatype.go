package oci

// Manifest media types MCR stores.
const (
	MediaTypeImageManifest  = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeImageIndex     = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	// MediaTypeDockerSchema1 and its signed form are refused: schema 1 is
	// deprecated and unsafe (unverifiable layer digests).
	MediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	// MediaTypeDockerForeignLayer is a layer served from elsewhere (urls).
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	MediaTypeOctetStream        = "application/octet-stream"
)

// IsIndex reports whether mt is a manifest list type (OCI index or Docker
// manifest list).
func IsIndex(mt string) bool { return mt == MediaTypeImageIndex || mt == MediaTypeDockerList }

// IsManifestType reports whether mt is a manifest type MCR accepts.
func IsManifestType(mt string) bool {
	switch mt {
	case MediaTypeImageManifest, MediaTypeImageIndex, MediaTypeDockerManifest, MediaTypeDockerList:
		return true
	}
	return false
}
