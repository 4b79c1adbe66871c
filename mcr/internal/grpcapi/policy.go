package grpcapi

import (
	"context"
	"fmt"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	mcrv1 "git.metacircular.net/metacircular/mcr/gen/mcr/v1"
	"git.metacircular.net/metacircular/mcr/internal/access"
	"git.metacircular.net/metacircular/mcr/internal/meta"
)

// policyGRPC implements mcrv1.PolicyServiceServer.
type policyGRPC struct {
	mcrv1.UnsafePolicyServiceServer
	d Deps
}

var _ mcrv1.PolicyServiceServer = policyGRPC{}

// PolicyPB is a rule on the wire.
func PolicyPB(r access.Rule) *mcrv1.Policy {
	return &mcrv1.Policy{Id: r.ID, Priority: int32(r.Priority), Effect: r.Effect, Repository: r.Repository, //nolint:gosec // priorities are validated small
		Accounts: r.Accounts, Roles: r.Roles, AccountTypes: r.AccountTypes, Actions: r.Actions, Description: r.Description,
		CreatedBy: r.CreatedBy, CreatedAt: tsOf(r.CreatedAt), UpdatedAt: tsOf(r.UpdatedAt)}
}

func ruleOf(p *mcrv1.Policy) access.Rule {
	return access.Rule{Priority: int(p.GetPriority()), Effect: p.GetEffect(), Repository: p.GetRepository(),
		Accounts: p.GetAccounts(), Roles: p.GetRoles(), AccountTypes: p.GetAccountTypes(), Actions: p.GetActions(),
		Description: p.GetDescription()}
}

// Rules is the policy domain the gRPC handlers and the web UI share:
// validate, store, reload the rules in force, audit.
type Rules struct{ D Deps }

// Create validates and stores a rule.
func (rs Rules) Create(ctx context.Context, actor string, r access.Rule) (access.Rule, error) {
	if err := r.Validate(); err != nil {
		return access.Rule{}, apierr.InvalidField("policy", "%v", err)
	}
	r.CreatedBy = actor
	out, err := rs.D.Store.CreateRule(ctx, r)
	if err != nil {
		return access.Rule{}, err
	}
	return out, rs.changed(ctx, actor, "policy.create", out)
}

// Update replaces rule id.
func (rs Rules) Update(ctx context.Context, actor string, id int64, r access.Rule) (access.Rule, error) {
	if err := r.Validate(); err != nil {
		return access.Rule{}, apierr.InvalidField("policy", "%v", err)
	}
	r.ID = id
	out, err := rs.D.Store.UpdateRule(ctx, r)
	if err != nil {
		return access.Rule{}, err
	}
	return out, rs.changed(ctx, actor, "policy.update", out)
}

// Delete removes rule id.
func (rs Rules) Delete(ctx context.Context, actor string, id int64) error {
	r, err := rs.D.Store.DeleteRule(ctx, id)
	if err != nil {
		return err
	}
	return rs.changed(ctx, actor, "policy.delete", r)
}

func (rs Rules) changed(ctx context.Context, actor, action string, r access.Rule) error {
	if err := rs.D.Reload(ctx); err != nil {
		return err
	}
	return rs.D.Store.AppendEvent(ctx, meta.Event{Actor: actor, Action: action, Repository: r.Repository,
		Reference: fmt.Sprintf("policy %d", r.ID),
		Detail: fmt.Sprintf("%s %v on %s for accounts %v roles %v types %v (priority %d)", r.Effect, r.Actions, r.Repository,
			r.Accounts, r.Roles, r.AccountTypes, r.Priority)})
}

func actor(ctx context.Context) string {
	id, _ := caller(ctx)
	if id == nil {
		return ""
	}
	return id.Username
}

// ListPolicies implements PolicyService.ListPolicies.
func (h policyGRPC) ListPolicies(ctx context.Context, _ *mcrv1.ListPoliciesRequest) (*mcrv1.ListPoliciesResponse, error) {
	rules, err := h.d.Store.Rules(ctx)
	if err != nil {
		return nil, err
	}
	out := &mcrv1.ListPoliciesResponse{Policies: []*mcrv1.Policy{}, AgentAccounts: h.d.Agents}
	for _, r := range rules {
		out.Policies = append(out.Policies, PolicyPB(r))
	}
	return out, nil
}

// GetPolicy implements PolicyService.GetPolicy.
func (h policyGRPC) GetPolicy(ctx context.Context, req *mcrv1.GetPolicyRequest) (*mcrv1.GetPolicyResponse, error) {
	r, err := h.d.Store.Rule(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &mcrv1.GetPolicyResponse{Policy: PolicyPB(r)}, nil
}

// CreatePolicy implements PolicyService.CreatePolicy.
func (h policyGRPC) CreatePolicy(ctx context.Context, req *mcrv1.CreatePolicyRequest) (*mcrv1.CreatePolicyResponse, error) {
	if req.GetPolicy() == nil {
		return nil, apierr.InvalidField("policy", "policy is required")
	}
	r, err := Rules{D: h.d}.Create(ctx, actor(ctx), ruleOf(req.GetPolicy()))
	if err != nil {
		return nil, err
	}
	return &mcrv1.CreatePolicyResponse{Policy: PolicyPB(r)}, nil
}

// UpdatePolicy implements PolicyService.UpdatePolicy.
func (h policyGRPC) UpdatePolicy(ctx context.Context, req *mcrv1.UpdatePolicyRequest) (*mcrv1.UpdatePolicyResponse, error) {
	if req.GetPolicy() == nil {
		return nil, apierr.InvalidField("policy", "policy is required")
	}
	r, err := Rules{D: h.d}.Update(ctx, actor(ctx), req.GetId(), ruleOf(req.GetPolicy()))
	if err != nil {
		return nil, err
	}
	return &mcrv1.UpdatePolicyResponse{Policy: PolicyPB(r)}, nil
}

// DeletePolicy implements PolicyService.DeletePolicy.
func (h policyGRPC) DeletePolicy(ctx context.Context, req *mcrv1.DeletePolicyRequest) (*mcrv1.DeletePolicyResponse, error) {
	if err := (Rules{D: h.d}).Delete(ctx, actor(ctx), req.GetId()); err != nil {
		return nil, err
	}
	return &mcrv1.DeletePolicyResponse{}, nil
}
