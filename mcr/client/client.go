// Package client is the public Go client for MCR's management API
// (mcr.v1 over gRPC): repositories, tags and manifests, access rules,
// garbage collection and the audit log. mcrctl is built on it. Tokens are
// MCIAS tokens: log in to MCIAS (mcias/client or mcdsl/auth) and pass the
// token here. Pushing and pulling images is the OCI distribution API,
// which any registry client speaks.
package client

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/mcdsl/grpcclient"
	mcrv1 "git.metacircular.net/metacircular/mcr/gen/mcr/v1"
)

// KindOf is the kind of a failed call's error (apierr.NotFound, ...).
func KindOf(err error) apierr.Kind { return apierr.KindOf(err) }

// Client calls one MCR server.
type Client struct {
	conn     *grpcclient.Conn
	registry mcrv1.RegistryServiceClient
	policies mcrv1.PolicyServiceClient
	gc       mcrv1.GCServiceClient
	audit    mcrv1.AuditServiceClient
}

// New returns a client for MCR's gRPC address (host:port) trusting caFile
// (or the system roots when empty). It connects on the first call.
func New(addr, caFile, token string) (*Client, error) {
	conn, err := grpcclient.Dial("mcr", addr, caFile, token)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, registry: mcrv1.NewRegistryServiceClient(conn), policies: mcrv1.NewPolicyServiceClient(conn),
		gc: mcrv1.NewGCServiceClient(conn), audit: mcrv1.NewAuditServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// SetToken sets the bearer token.
func (c *Client) SetToken(tok string) { c.conn.SetToken(tok) }

func tm(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// Repository is a repository the caller may pull.
type Repository struct {
	Name      string    `json:"name"`
	Tags      int64     `json:"tags"`
	Manifests int64     `json:"manifests"`
	SizeBytes int64     `json:"size_bytes"`
	CreatedAt time.Time `json:"created_at"`
	Actions   []string  `json:"actions"`
}

func repoOf(r *mcrv1.Repository) Repository {
	return Repository{Name: r.GetName(), Tags: r.GetTags(), Manifests: r.GetManifests(), SizeBytes: r.GetSizeBytes(),
		CreatedAt: tm(r.GetCreatedAt()), Actions: r.GetActions()}
}

// Tag is a tag and the manifest it points at.
type Tag struct {
	Name      string    `json:"name"`
	Digest    string    `json:"digest"`
	MediaType string    `json:"media_type"`
	SizeBytes int64     `json:"size_bytes"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Manifest summarizes a manifest.
type Manifest struct {
	Digest       string    `json:"digest"`
	MediaType    string    `json:"media_type"`
	ArtifactType string    `json:"artifact_type,omitempty"`
	SizeBytes    int64     `json:"size_bytes"`
	Subject      string    `json:"subject,omitempty"`
	Tags         []string  `json:"tags"`
	CreatedAt    time.Time `json:"created_at"`
}

func manifestOf(m *mcrv1.ManifestSummary) Manifest {
	return Manifest{Digest: m.GetDigest(), MediaType: m.GetMediaType(), ArtifactType: m.GetArtifactType(), SizeBytes: m.GetSizeBytes(),
		Subject: m.GetSubject(), Tags: m.GetTags(), CreatedAt: tm(m.GetCreatedAt())}
}

// RepositoryDetail is a repository with its tags and manifests.
type RepositoryDetail struct {
	Repository Repository `json:"repository"`
	Tags       []Tag      `json:"tags"`
	Manifests  []Manifest `json:"manifests"`
}

// ListRepositories lists the repositories the caller may pull.
func (c *Client) ListRepositories(ctx context.Context) ([]Repository, error) {
	resp, err := c.registry.ListRepositories(ctx, &mcrv1.ListRepositoriesRequest{})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := []Repository{}
	for _, r := range resp.GetRepositories() {
		out = append(out, repoOf(r))
	}
	return out, nil
}

// GetRepository returns a repository with its tags and manifests.
func (c *Client) GetRepository(ctx context.Context, name string) (RepositoryDetail, error) {
	resp, err := c.registry.GetRepository(ctx, &mcrv1.GetRepositoryRequest{Name: name})
	if err != nil {
		return RepositoryDetail{}, c.conn.Err(err)
	}
	out := RepositoryDetail{Repository: repoOf(resp.GetRepository()), Tags: []Tag{}, Manifests: []Manifest{}}
	for _, t := range resp.GetTags() {
		out.Tags = append(out.Tags, Tag{Name: t.GetName(), Digest: t.GetDigest(), MediaType: t.GetMediaType(), SizeBytes: t.GetSizeBytes(), UpdatedAt: tm(t.GetUpdatedAt())})
	}
	for _, m := range resp.GetManifests() {
		out.Manifests = append(out.Manifests, manifestOf(m))
	}
	return out, nil
}

// Descriptor is a config, layer, index entry or referrer.
type Descriptor struct {
	MediaType    string            `json:"media_type"`
	Digest       string            `json:"digest"`
	SizeBytes    int64             `json:"size_bytes"`
	Platform     string            `json:"platform,omitempty"`
	ArtifactType string            `json:"artifact_type,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Present      bool              `json:"present"`
}

func descOf(d *mcrv1.Descriptor) Descriptor {
	return Descriptor{MediaType: d.GetMediaType(), Digest: d.GetDigest(), SizeBytes: d.GetSizeBytes(), Platform: d.GetPlatform(),
		ArtifactType: d.GetArtifactType(), Annotations: d.GetAnnotations(), Present: d.GetPresent()}
}

func descsOf(l []*mcrv1.Descriptor) []Descriptor {
	out := []Descriptor{}
	for _, d := range l {
		out = append(out, descOf(d))
	}
	return out
}

// ManifestDetail is an inspected manifest.
type ManifestDetail struct {
	Manifest       Manifest          `json:"manifest"`
	Config         *Descriptor       `json:"config,omitempty"`
	Layers         []Descriptor      `json:"layers"`
	Manifests      []Descriptor      `json:"manifests"`
	Referrers      []Descriptor      `json:"referrers"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	TotalSizeBytes int64             `json:"total_size_bytes"`
	Content        string            `json:"content"`
}

// GetManifest inspects a manifest by tag or digest.
func (c *Client) GetManifest(ctx context.Context, repo, ref string) (ManifestDetail, error) {
	resp, err := c.registry.GetManifest(ctx, &mcrv1.GetManifestRequest{Repository: repo, Reference: ref})
	if err != nil {
		return ManifestDetail{}, c.conn.Err(err)
	}
	out := ManifestDetail{Manifest: manifestOf(resp.GetManifest()), Layers: descsOf(resp.GetLayers()), Manifests: descsOf(resp.GetManifests()),
		Referrers: descsOf(resp.GetReferrers()), Annotations: resp.GetAnnotations(), TotalSizeBytes: resp.GetTotalSizeBytes(), Content: resp.GetContent()}
	if resp.GetConfig() != nil {
		d := descOf(resp.GetConfig())
		out.Config = &d
	}
	return out, nil
}

// Policy is an access rule (see mcr.v1.Policy).
type Policy struct {
	ID           int64     `json:"id"`
	Priority     int32     `json:"priority"`
	Effect       string    `json:"effect"`
	Repository   string    `json:"repository"`
	Accounts     []string  `json:"accounts"`
	Roles        []string  `json:"roles"`
	AccountTypes []string  `json:"account_types"`
	Actions      []string  `json:"actions"`
	Description  string    `json:"description"`
	CreatedBy    string    `json:"created_by,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

func policyOf(p *mcrv1.Policy) Policy {
	return Policy{ID: p.GetId(), Priority: p.GetPriority(), Effect: p.GetEffect(), Repository: p.GetRepository(), Accounts: p.GetAccounts(),
		Roles: p.GetRoles(), AccountTypes: p.GetAccountTypes(), Actions: p.GetActions(), Description: p.GetDescription(),
		CreatedBy: p.GetCreatedBy(), CreatedAt: tm(p.GetCreatedAt()), UpdatedAt: tm(p.GetUpdatedAt())}
}

func (p Policy) pb() *mcrv1.Policy {
	return &mcrv1.Policy{Priority: p.Priority, Effect: p.Effect, Repository: p.Repository, Accounts: p.Accounts, Roles: p.Roles,
		AccountTypes: p.AccountTypes, Actions: p.Actions, Description: p.Description}
}

// ListPolicies lists the rules in evaluation order and the agent
// accounts.
func (c *Client) ListPolicies(ctx context.Context) ([]Policy, []string, error) {
	resp, err := c.policies.ListPolicies(ctx, &mcrv1.ListPoliciesRequest{})
	if err != nil {
		return nil, nil, c.conn.Err(err)
	}
	out := []Policy{}
	for _, p := range resp.GetPolicies() {
		out = append(out, policyOf(p))
	}
	return out, resp.GetAgentAccounts(), nil
}

// CreatePolicy adds a rule.
func (c *Client) CreatePolicy(ctx context.Context, p Policy) (Policy, error) {
	resp, err := c.policies.CreatePolicy(ctx, &mcrv1.CreatePolicyRequest{Policy: p.pb()})
	if err != nil {
		return Policy{}, c.conn.Err(err)
	}
	return policyOf(resp.GetPolicy()), nil
}

// UpdatePolicy replaces rule id.
func (c *Client) UpdatePolicy(ctx context.Context, id int64, p Policy) (Policy, error) {
	resp, err := c.policies.UpdatePolicy(ctx, &mcrv1.UpdatePolicyRequest{Id: id, Policy: p.pb()})
	if err != nil {
		return Policy{}, c.conn.Err(err)
	}
	return policyOf(resp.GetPolicy()), nil
}

// GetPolicy returns rule id.
func (c *Client) GetPolicy(ctx context.Context, id int64) (Policy, error) {
	resp, err := c.policies.GetPolicy(ctx, &mcrv1.GetPolicyRequest{Id: id})
	if err != nil {
		return Policy{}, c.conn.Err(err)
	}
	return policyOf(resp.GetPolicy()), nil
}

// DeletePolicy removes rule id.
func (c *Client) DeletePolicy(ctx context.Context, id int64) error {
	_, err := c.policies.DeletePolicy(ctx, &mcrv1.DeletePolicyRequest{Id: id})
	return c.conn.Err(err)
}

// GCBlob is a deleted (or deletable) blob.
type GCBlob struct {
	Digest    string `json:"digest"`
	SizeBytes int64  `json:"size_bytes"`
}

// GCReport is what a collection did.
type GCReport struct {
	DryRun       bool      `json:"dry_run"`
	StartedAt    time.Time `json:"started_at"`
	FinishedAt   time.Time `json:"finished_at"`
	Blobs        []GCBlob  `json:"blobs"`
	BytesFreed   int64     `json:"bytes_freed"`
	BlobsKept    int64     `json:"blobs_kept"`
	Uploads      []string  `json:"uploads"`
	OrphanFiles  []string  `json:"orphan_files"`
	Repositories []string  `json:"repositories"`
}

// RunGC collects garbage on the server, calling progress as stages
// advance, and returns the report.
func (c *Client) RunGC(ctx context.Context, dryRun bool, progress func(stage string, done, total int64)) (GCReport, error) {
	stream, err := c.gc.RunGC(ctx, &mcrv1.RunGCRequest{DryRun: dryRun})
	if err != nil {
		return GCReport{}, c.conn.Err(err)
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return GCReport{}, errors.New("mcr: the collection ended without a report")
		}
		if err != nil {
			return GCReport{}, c.conn.Err(err)
		}
		if p := msg.GetProgress(); p != nil && progress != nil {
			progress(p.GetStage(), p.GetDone(), p.GetTotal())
		}
		if r := msg.GetReport(); r != nil {
			out := GCReport{DryRun: r.GetDryRun(), StartedAt: tm(r.GetStartedAt()), FinishedAt: tm(r.GetFinishedAt()), Blobs: []GCBlob{},
				BytesFreed: r.GetBytesFreed(), BlobsKept: r.GetBlobsKept(), Uploads: r.GetUploads(), OrphanFiles: r.GetOrphanFiles(),
				Repositories: r.GetRepositories()}
			for _, b := range r.GetBlobs() {
				out.Blobs = append(out.Blobs, GCBlob{Digest: b.GetDigest(), SizeBytes: b.GetSizeBytes()})
			}
			return out, nil
		}
	}
}

// Event is one audit record.
type Event struct {
	ID         int64     `json:"id"`
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	Repository string    `json:"repository"`
	Reference  string    `json:"reference"`
	Digest     string    `json:"digest"`
	Remote     string    `json:"remote"`
	Detail     string    `json:"detail"`
}

// AuditFilter narrows ListEvents.
type AuditFilter struct {
	Repository, Actor, Action string
	Since                     time.Time
	BeforeID                  int64
	Limit                     int32
}

// ListEvents lists audit events, newest first.
func (c *Client) ListEvents(ctx context.Context, f AuditFilter) ([]Event, error) {
	req := &mcrv1.ListEventsRequest{Repository: f.Repository, Actor: f.Actor, Action: f.Action, BeforeId: f.BeforeID, Limit: f.Limit}
	if !f.Since.IsZero() {
		req.Since = timestamppb.New(f.Since)
	}
	resp, err := c.audit.ListEvents(ctx, req)
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := []Event{}
	for _, e := range resp.GetEvents() {
		out = append(out, Event{ID: e.GetId(), At: tm(e.GetAt()), Actor: e.GetActor(), Action: e.GetAction(), Repository: e.GetRepository(),
			Reference: e.GetReference(), Digest: e.GetDigest(), Remote: e.GetRemote(), Detail: e.GetDetail()})
	}
	return out, nil
}
