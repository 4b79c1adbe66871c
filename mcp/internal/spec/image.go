package spec

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Image is a parsed image reference: <registry>/<repository>:<tag>
// (optionally @<digest>).
type Image struct {
	// Registry is the host[:port] part ("" when the reference has none).
	Registry string
	// Repository is the path after the registry ("team/hello").
	Repository string
	// Tag is the pinned version; Digest the content digest when given.
	Tag    string
	Digest string
}

// Name is the repository's last path element: what [build.images] keys
// name.
func (i Image) Name() string {
	return i.Repository[strings.LastIndex(i.Repository, "/")+1:]
}

// Version is the tag (what "mcp ps" shows as the running version).
func (i Image) Version() string { return i.Tag }

var (
	semverTag = regexp.MustCompile(`^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	repoPart  = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)
	digestRe  = regexp.MustCompile(`^sha(256:[a-f0-9]{64}|512:[a-f0-9]{128})$`)
)

// ParseImage parses ref and requires a pinned semantic-version tag
// (v1.2.3, 1.2.3-rc.1): "latest", other floating tags and no tag at all
// are refused, so a deploy is reproducible and "mcp ps" shows what runs.
func ParseImage(ref string) (Image, error) {
	if ref == "" {
		return Image{}, errors.New("empty image reference")
	}
	rest := ref
	var img Image
	if at := strings.Index(rest, "@"); at >= 0 {
		img.Digest = rest[at+1:]
		rest = rest[:at]
		if !digestRe.MatchString(img.Digest) {
			return Image{}, fmt.Errorf("image %q: bad digest %q", ref, img.Digest)
		}
	}
	slash := strings.Index(rest, "/")
	if slash > 0 && strings.ContainsAny(rest[:slash], ".:") || rest[:max(slash, 0)] == "localhost" {
		img.Registry = rest[:slash]
		rest = rest[slash+1:]
	}
	colon := strings.LastIndex(rest, ":")
	if colon < 0 {
		return Image{}, fmt.Errorf("image %q has no tag: pin a version (e.g. %s:v1.0.0)", ref, ref)
	}
	img.Repository, img.Tag = rest[:colon], rest[colon+1:]
	if img.Repository == "" {
		return Image{}, fmt.Errorf("image %q has no repository", ref)
	}
	for _, p := range strings.Split(img.Repository, "/") {
		if !repoPart.MatchString(p) {
			return Image{}, fmt.Errorf("image %q: bad repository name %q", ref, img.Repository)
		}
	}
	if img.Tag == "latest" {
		return Image{}, fmt.Errorf("image %q: :latest is refused: pin a version (e.g. :v1.0.0)", ref)
	}
	if !semverTag.MatchString(img.Tag) {
		return Image{}, fmt.Errorf("image %q: tag %q is not a pinned semantic version (e.g. v1.0.0)", ref, img.Tag)
	}
	return img, nil
}
