package server

import (
	"context"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	mciasv1 "git.metacircular.net/metacircular/mcias/gen/mcias/v1"
	"git.metacircular.net/metacircular/mcias/internal/policy"
)

// policyGRPC implements mciasv1.PolicyServiceServer.
type policyGRPC struct {
	// Unsafe marker: see authGRPC.
	mciasv1.UnsafePolicyServiceServer
	grpcHandlers
}

var _ mciasv1.PolicyServiceServer = policyGRPC{}

func policyPB(r policy.Rule) *mciasv1.Policy {
	return &mciasv1.Policy{
		Id: r.ID, Priority: int32(r.Priority), //nolint:gosec // Rule.Validate bounds stored priorities to 0..1000000
		Effect: r.Effect, Roles: r.Roles, AccountTypes: r.AccountTypes, Actions: r.Actions,
		ServiceNames: r.ServiceNames, RequiredTags: r.RequiredTags, Description: r.Description,
	}
}

func ruleFrom(p *mciasv1.Policy) policy.Rule {
	return policy.Rule{
		ID: p.GetId(), Priority: int(p.GetPriority()), Effect: p.GetEffect(), Roles: p.GetRoles(),
		AccountTypes: p.GetAccountTypes(), Actions: p.GetActions(), ServiceNames: p.GetServiceNames(),
		RequiredTags: p.GetRequiredTags(), Description: p.GetDescription(),
	}
}

// policyID checks a rule id from a request.
func policyID(id int64) (int64, error) {
	if id <= 0 {
		return 0, apierr.InvalidField("id", "policy id must be a positive integer")
	}
	return id, nil
}

// ListPolicies implements PolicyService.ListPolicies.
func (h policyGRPC) ListPolicies(ctx context.Context, _ *mciasv1.ListPoliciesRequest) (*mciasv1.ListPoliciesResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	list, err := h.svc.ListPolicies(ctx, c)
	if err != nil {
		return nil, err
	}
	out := &mciasv1.ListPoliciesResponse{Policies: make([]*mciasv1.Policy, 0, len(list))}
	for _, r := range list {
		out.Policies = append(out.Policies, policyPB(r))
	}
	return out, nil
}

// CreatePolicy implements PolicyService.CreatePolicy; the request's id is
// ignored.
func (h policyGRPC) CreatePolicy(ctx context.Context, req *mciasv1.CreatePolicyRequest) (*mciasv1.CreatePolicyResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	r := ruleFrom(req.GetPolicy())
	r.ID = 0
	out, err := h.svc.CreatePolicy(ctx, c, r)
	if err != nil {
		return nil, err
	}
	return &mciasv1.CreatePolicyResponse{Policy: policyPB(out)}, nil
}

// GetPolicy implements PolicyService.GetPolicy.
func (h policyGRPC) GetPolicy(ctx context.Context, req *mciasv1.GetPolicyRequest) (*mciasv1.GetPolicyResponse, error) {
	id, err := policyID(req.GetId())
	if err != nil {
		return nil, err
	}
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	out, err := h.svc.GetPolicy(ctx, c, id)
	if err != nil {
		return nil, err
	}
	return &mciasv1.GetPolicyResponse{Policy: policyPB(out)}, nil
}

// UpdatePolicy implements PolicyService.UpdatePolicy.
func (h policyGRPC) UpdatePolicy(ctx context.Context, req *mciasv1.UpdatePolicyRequest) (*mciasv1.UpdatePolicyResponse, error) {
	id, err := policyID(req.GetPolicy().GetId())
	if err != nil {
		return nil, err
	}
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	r := ruleFrom(req.GetPolicy())
	r.ID = id
	out, err := h.svc.UpdatePolicy(ctx, c, r)
	if err != nil {
		return nil, err
	}
	return &mciasv1.UpdatePolicyResponse{Policy: policyPB(out)}, nil
}

// DeletePolicy implements PolicyService.DeletePolicy.
func (h policyGRPC) DeletePolicy(ctx context.Context, req *mciasv1.DeletePolicyRequest) (*mciasv1.DeletePolicyResponse, error) {
	id, err := policyID(req.GetId())
	if err != nil {
		return nil, err
	}
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := h.svc.DeletePolicy(ctx, c, id); err != nil {
		return nil, err
	}
	return &mciasv1.DeletePolicyResponse{}, nil
}
