package server

import (
	"context"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/names"
	"git.metacircular.net/metacircular/metacrypt/internal/pki"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

// policyGRPC implements mcv1.PolicyServiceServer.
type policyGRPC struct {
	mcv1.UnsafePolicyServiceServer
	*app
}

var _ mcv1.PolicyServiceServer = policyGRPC{}

func subjectPB(s policy.Subject) *mcv1.Subject {
	return &mcv1.Subject{Accounts: s.Accounts, Roles: s.Roles, AccountTypes: s.AccountTypes}
}

func subjectOf(s *mcv1.Subject) policy.Subject {
	return policy.Subject{Accounts: s.GetAccounts(), Roles: s.GetRoles(), AccountTypes: s.GetAccountTypes()}
}

func rulePB(r policy.Rule) *mcv1.Rule {
	return &mcv1.Rule{
		Id: r.ID, Priority: int32(r.Priority), Effect: string(r.Effect), Subject: subjectPB(r.Subject), //nolint:gosec // bounded by Validate
		Mounts: r.Mounts, Operations: r.Operations, Resources: r.Resources, Description: r.Description,
	}
}

func ruleOf(r *mcv1.Rule) policy.Rule {
	return policy.Rule{
		Priority: int(r.GetPriority()), Effect: policy.Effect(r.GetEffect()), Subject: subjectOf(r.GetSubject()),
		Mounts: r.GetMounts(), Operations: r.GetOperations(), Resources: r.GetResources(), Description: r.GetDescription(),
	}
}

func limitPB(l policy.Limit) *mcv1.Limit {
	return &mcv1.Limit{
		Id: l.ID, Priority: int32(l.Priority), Effect: string(l.Effect), Subject: subjectPB(l.Subject), //nolint:gosec // bounded by Validate
		Mounts: l.Mounts, Names: l.Names, IpRanges: l.IPRanges, Wildcards: l.Wildcards, Description: l.Description,
	}
}

func limitOf(l *mcv1.Limit) policy.Limit {
	return policy.Limit{
		Priority: int(l.GetPriority()), Effect: policy.Effect(l.GetEffect()), Subject: subjectOf(l.GetSubject()),
		Mounts: l.GetMounts(), Names: l.GetNames(), IPRanges: l.GetIpRanges(), Wildcards: l.GetWildcards(), Description: l.GetDescription(),
	}
}

func needRule(r *mcv1.Rule) error {
	if r == nil {
		return apierr.InvalidField("rule", "required")
	}
	return nil
}

func needLimit(l *mcv1.Limit) error {
	if l == nil {
		return apierr.InvalidField("limit", "required")
	}
	return nil
}

// ListRules implements PolicyService.ListRules.
func (h policyGRPC) ListRules(ctx context.Context, _ *mcv1.ListRulesRequest) (*mcv1.ListRulesResponse, error) {
	rules, err := h.policy.Rules(ctx)
	if err != nil {
		return nil, err
	}
	out := &mcv1.ListRulesResponse{Rules: make([]*mcv1.Rule, 0, len(rules))}
	for _, r := range rules {
		out.Rules = append(out.Rules, rulePB(r))
	}
	return out, nil
}

// CreateRule implements PolicyService.CreateRule.
func (h policyGRPC) CreateRule(ctx context.Context, req *mcv1.CreateRuleRequest) (*mcv1.CreateRuleResponse, error) {
	if err := needRule(req.GetRule()); err != nil {
		return nil, err
	}
	r, err := h.policy.CreateRule(ctx, ruleOf(req.GetRule()))
	if err != nil {
		return nil, err
	}
	h.logger.Info("policy rule created", "id", r.ID, "by", caller(ctx).Username)
	return &mcv1.CreateRuleResponse{Rule: rulePB(r)}, nil
}

// UpdateRule implements PolicyService.UpdateRule.
func (h policyGRPC) UpdateRule(ctx context.Context, req *mcv1.UpdateRuleRequest) (*mcv1.UpdateRuleResponse, error) {
	if err := needRule(req.GetRule()); err != nil {
		return nil, err
	}
	r, err := h.policy.UpdateRule(ctx, req.GetId(), ruleOf(req.GetRule()))
	if err != nil {
		return nil, err
	}
	h.logger.Info("policy rule updated", "id", r.ID, "by", caller(ctx).Username)
	return &mcv1.UpdateRuleResponse{Rule: rulePB(r)}, nil
}

// DeleteRule implements PolicyService.DeleteRule.
func (h policyGRPC) DeleteRule(ctx context.Context, req *mcv1.DeleteRuleRequest) (*mcv1.DeleteRuleResponse, error) {
	if err := h.policy.DeleteRule(ctx, req.GetId()); err != nil {
		return nil, err
	}
	h.logger.Info("policy rule deleted", "id", req.GetId(), "by", caller(ctx).Username)
	return &mcv1.DeleteRuleResponse{}, nil
}

// ListLimits implements PolicyService.ListLimits.
func (h policyGRPC) ListLimits(ctx context.Context, _ *mcv1.ListLimitsRequest) (*mcv1.ListLimitsResponse, error) {
	limits, err := h.policy.Limits(ctx)
	if err != nil {
		return nil, err
	}
	out := &mcv1.ListLimitsResponse{Limits: make([]*mcv1.Limit, 0, len(limits))}
	for _, l := range limits {
		out.Limits = append(out.Limits, limitPB(l))
	}
	return out, nil
}

// CreateLimit implements PolicyService.CreateLimit.
func (h policyGRPC) CreateLimit(ctx context.Context, req *mcv1.CreateLimitRequest) (*mcv1.CreateLimitResponse, error) {
	if err := needLimit(req.GetLimit()); err != nil {
		return nil, err
	}
	l, err := h.policy.CreateLimit(ctx, limitOf(req.GetLimit()))
	if err != nil {
		return nil, err
	}
	h.logger.Info("issuance limit created", "id", l.ID, "by", caller(ctx).Username)
	return &mcv1.CreateLimitResponse{Limit: limitPB(l)}, nil
}

// UpdateLimit implements PolicyService.UpdateLimit.
func (h policyGRPC) UpdateLimit(ctx context.Context, req *mcv1.UpdateLimitRequest) (*mcv1.UpdateLimitResponse, error) {
	if err := needLimit(req.GetLimit()); err != nil {
		return nil, err
	}
	l, err := h.policy.UpdateLimit(ctx, req.GetId(), limitOf(req.GetLimit()))
	if err != nil {
		return nil, err
	}
	h.logger.Info("issuance limit updated", "id", l.ID, "by", caller(ctx).Username)
	return &mcv1.UpdateLimitResponse{Limit: limitPB(l)}, nil
}

// DeleteLimit implements PolicyService.DeleteLimit.
func (h policyGRPC) DeleteLimit(ctx context.Context, req *mcv1.DeleteLimitRequest) (*mcv1.DeleteLimitResponse, error) {
	if err := h.policy.DeleteLimit(ctx, req.GetId()); err != nil {
		return nil, err
	}
	h.logger.Info("issuance limit deleted", "id", req.GetId(), "by", caller(ctx).Username)
	return &mcv1.DeleteLimitResponse{}, nil
}

// Check implements PolicyService.Check.
func (h policyGRPC) Check(ctx context.Context, req *mcv1.CheckRequest) (*mcv1.CheckResponse, error) {
	if req.GetAccount() == "" {
		return nil, apierr.InvalidField("account", "required")
	}
	c := engine.Caller{Username: req.GetAccount(), Roles: req.GetRoles(), AccountType: req.GetAccountType()}
	var n pki.Names
	for i, d := range req.GetDnsNames() {
		name, err := names.ParseDNS(d)
		if err != nil {
			return nil, apierr.InvalidField("dns_names["+itoa(i)+"]", "%v", err)
		}
		n.DNS = append(n.DNS, name)
	}
	ips, err := pki.ParseIPs("ip_addresses", req.GetIpAddresses())
	if err != nil {
		return nil, err
	}
	n.IPs = ips
	dec, nds, err := h.policy.Explain(ctx, c, req.GetMount(), req.GetOperation(), req.GetResource(), n)
	if err != nil {
		return nil, err
	}
	out := &mcv1.CheckResponse{Allowed: dec.Allowed, Reason: dec.Reason}
	for _, nd := range nds {
		out.Names = append(out.Names, &mcv1.NameDecision{Name: nd.Name, Allowed: nd.Allowed, Reason: nd.Reason})
	}
	return out, nil
}
