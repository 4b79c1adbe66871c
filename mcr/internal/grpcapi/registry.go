package grpcapi

import (
	"context"
	"errors"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	mcrv1 "git.metacircular.net/metacircular/mcr/gen/mcr/v1"
	"git.metacircular.net/metacircular/mcr/internal/manifest"
	"git.metacircular.net/metacircular/mcr/internal/meta"
	"git.metacircular.net/metacircular/mcr/internal/oci"
)

// registryGRPC implements mcrv1.RegistryServiceServer.
type registryGRPC struct {
	mcrv1.UnsafeRegistryServiceServer
	d Deps
}

var _ mcrv1.RegistryServiceServer = registryGRPC{}

func repoPB(r meta.Repository, actions []string) *mcrv1.Repository {
	return &mcrv1.Repository{Name: r.Name, Tags: int64(r.Tags), Manifests: int64(r.Manifests), SizeBytes: r.Size,
		CreatedAt: tsOf(r.CreatedAt), Actions: actions}
}

// ListRepositories implements RegistryService.ListRepositories.
func (h registryGRPC) ListRepositories(ctx context.Context, _ *mcrv1.ListRepositoriesRequest) (*mcrv1.ListRepositoriesResponse, error) {
	_, p := caller(ctx)
	repos, err := h.d.Store.Repositories(ctx, "", 0)
	if err != nil {
		return nil, err
	}
	pol := h.d.Policy()
	out := &mcrv1.ListRepositoriesResponse{Repositories: []*mcrv1.Repository{}}
	for _, r := range repos {
		if acts := pol.Allowed(p, r.Name); len(acts) > 0 && pol.Can(p, r.Name, oci.ActionPull) {
			out.Repositories = append(out.Repositories, repoPB(r, acts))
		}
	}
	return out, nil
}

// pullable checks the caller may pull name and that it exists.
func (h registryGRPC) pullable(ctx context.Context, name string) (meta.Repository, []string, error) {
	_, p := caller(ctx)
	if _, err := oci.ParseName(name); err != nil {
		return meta.Repository{}, nil, apierr.InvalidField("name", "invalid repository name %q", name)
	}
	pol := h.d.Policy()
	if !pol.Can(p, name, oci.ActionPull) {
		return meta.Repository{}, nil, noRepository(name)
	}
	r, err := h.d.Store.GetRepository(ctx, name)
	if errors.Is(err, meta.ErrNoRepository) {
		return meta.Repository{}, nil, noRepository(name)
	}
	return r, pol.Allowed(p, name), err
}

func summaryPB(m meta.Manifest) *mcrv1.ManifestSummary {
	return &mcrv1.ManifestSummary{Digest: m.Digest, MediaType: m.MediaType, ArtifactType: meta.ReferrerArtifactType(m),
		SizeBytes: m.Size, Subject: m.Subject, Tags: m.Tags, CreatedAt: tsOf(m.CreatedAt)}
}

// GetRepository implements RegistryService.GetRepository.
func (h registryGRPC) GetRepository(ctx context.Context, req *mcrv1.GetRepositoryRequest) (*mcrv1.GetRepositoryResponse, error) {
	r, acts, err := h.pullable(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	tags, _, err := h.d.Store.Tags(ctx, r.Name, "", -1)
	if err != nil {
		return nil, err
	}
	ms, err := h.d.Store.Manifests(ctx, r.Name)
	if err != nil {
		return nil, err
	}
	out := &mcrv1.GetRepositoryResponse{Repository: repoPB(r, acts), Tags: []*mcrv1.Tag{}, Manifests: []*mcrv1.ManifestSummary{}}
	for _, t := range tags {
		out.Tags = append(out.Tags, &mcrv1.Tag{Name: t.Name, Digest: t.Digest, MediaType: t.MediaType, SizeBytes: t.Size, UpdatedAt: tsOf(t.UpdatedAt)})
	}
	for _, m := range ms {
		out.Manifests = append(out.Manifests, summaryPB(m))
	}
	return out, nil
}

// GetManifest implements RegistryService.GetManifest.
func (h registryGRPC) GetManifest(ctx context.Context, req *mcrv1.GetManifestRequest) (*mcrv1.GetManifestResponse, error) {
	r, _, err := h.pullable(ctx, req.GetRepository())
	if err != nil {
		return nil, err
	}
	return Inspect(ctx, h.d.Store, r.Name, req.GetReference())
}

var errNoManifest = apierr.New(apierr.NotFound, "no such manifest")

// Inspect describes a manifest of repo by tag or digest (the web UI uses
// it too; the caller has checked access).
func Inspect(ctx context.Context, st *meta.Store, repo, ref string) (*mcrv1.GetManifestResponse, error) {
	digest := ref
	if !strings.Contains(ref, ":") {
		if !oci.ValidTag(ref) {
			return nil, apierr.InvalidField("reference", "want a tag or a digest")
		}
		d, err := st.ResolveTag(ctx, repo, ref)
		if err != nil {
			return nil, errNoManifest
		}
		digest = d
	} else if _, err := oci.ParseDigest(ref); err != nil {
		return nil, apierr.InvalidField("reference", "want a tag or a digest")
	}
	m, err := st.GetManifest(ctx, repo, digest)
	if err != nil {
		return nil, errNoManifest
	}
	parsed, err := manifest.Parse(m.MediaType, m.Content)
	if err != nil {
		return nil, err
	}
	all, err := st.Manifests(ctx, repo)
	if err != nil {
		return nil, err
	}
	for _, x := range all {
		if x.Digest == m.Digest {
			m.Tags = x.Tags
		}
	}
	out := &mcrv1.GetManifestResponse{Manifest: summaryPB(m), Annotations: m.Annotations, Content: string(m.Content),
		Layers: []*mcrv1.Descriptor{}, Manifests: []*mcrv1.Descriptor{}, Referrers: []*mcrv1.Descriptor{}, TotalSizeBytes: m.Size}
	blobDesc := func(d manifest.Descriptor) *mcrv1.Descriptor {
		_, err := st.RepoBlob(ctx, repo, d.Digest)
		return &mcrv1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, SizeBytes: d.Size, Annotations: d.Annotations,
			ArtifactType: d.ArtifactType, Present: err == nil}
	}
	if parsed.Config != nil {
		out.Config = blobDesc(*parsed.Config)
		out.TotalSizeBytes += parsed.Config.Size
	}
	for _, l := range parsed.Layers {
		out.Layers = append(out.Layers, blobDesc(l))
		out.TotalSizeBytes += l.Size
	}
	for _, c := range parsed.Manifests {
		_, err := st.GetManifest(ctx, repo, c.Digest)
		out.Manifests = append(out.Manifests, &mcrv1.Descriptor{MediaType: c.MediaType, Digest: c.Digest, SizeBytes: c.Size,
			Platform: c.Platform.String(), ArtifactType: c.ArtifactType, Annotations: c.Annotations, Present: err == nil})
	}
	refs, err := st.Referrers(ctx, repo, m.Digest, "")
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		out.Referrers = append(out.Referrers, &mcrv1.Descriptor{MediaType: r.MediaType, Digest: r.Digest, SizeBytes: r.Size,
			ArtifactType: meta.ReferrerArtifactType(r), Annotations: r.Annotations, Present: true})
	}
	return out, nil
}
