package client

import (
	"context"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
)

// Subject selects callers; empty lists match anyone.
type Subject struct {
	Accounts     []string `json:"accounts,omitempty"`
	Roles        []string `json:"roles,omitempty"`
	AccountTypes []string `json:"account_types,omitempty"`
}

func (s Subject) pb() *mcv1.Subject {
	return &mcv1.Subject{Accounts: s.Accounts, Roles: s.Roles, AccountTypes: s.AccountTypes}
}

func subjectOf(s *mcv1.Subject) Subject {
	return Subject{Accounts: s.GetAccounts(), Roles: s.GetRoles(), AccountTypes: s.GetAccountTypes()}
}

// Rule is an ACL rule (see the proto for its semantics).
type Rule struct {
	ID          int64    `json:"id"`
	Priority    int32    `json:"priority"`
	Effect      string   `json:"effect"`
	Subject     Subject  `json:"subject"`
	Mounts      []string `json:"mounts,omitempty"`
	Operations  []string `json:"operations,omitempty"`
	Resources   []string `json:"resources,omitempty"`
	Description string   `json:"description,omitempty"`
}

func (r Rule) pb() *mcv1.Rule {
	return &mcv1.Rule{Priority: r.Priority, Effect: r.Effect, Subject: r.Subject.pb(), Mounts: r.Mounts,
		Operations: r.Operations, Resources: r.Resources, Description: r.Description}
}

func ruleOf(r *mcv1.Rule) Rule {
	return Rule{ID: r.GetId(), Priority: r.GetPriority(), Effect: r.GetEffect(), Subject: subjectOf(r.GetSubject()),
		Mounts: r.GetMounts(), Operations: r.GetOperations(), Resources: r.GetResources(), Description: r.GetDescription()}
}

// Limit is an issuance limit (see the proto for its semantics).
type Limit struct {
	ID          int64    `json:"id"`
	Priority    int32    `json:"priority"`
	Effect      string   `json:"effect"`
	Subject     Subject  `json:"subject"`
	Mounts      []string `json:"mounts,omitempty"`
	Names       []string `json:"names,omitempty"`
	IPRanges    []string `json:"ip_ranges,omitempty"`
	Wildcards   bool     `json:"wildcards"`
	Description string   `json:"description,omitempty"`
}

func (l Limit) pb() *mcv1.Limit {
	return &mcv1.Limit{Priority: l.Priority, Effect: l.Effect, Subject: l.Subject.pb(), Mounts: l.Mounts,
		Names: l.Names, IpRanges: l.IPRanges, Wildcards: l.Wildcards, Description: l.Description}
}

func limitOf(l *mcv1.Limit) Limit {
	return Limit{ID: l.GetId(), Priority: l.GetPriority(), Effect: l.GetEffect(), Subject: subjectOf(l.GetSubject()),
		Mounts: l.GetMounts(), Names: l.GetNames(), IPRanges: l.GetIpRanges(), Wildcards: l.GetWildcards(), Description: l.GetDescription()}
}

// Rules lists the ACL rules in evaluation order.
func (c *Client) Rules(ctx context.Context) ([]Rule, error) {
	resp, err := c.policy.ListRules(ctx, &mcv1.ListRulesRequest{})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Rule, 0, len(resp.GetRules()))
	for _, r := range resp.GetRules() {
		out = append(out, ruleOf(r))
	}
	return out, nil
}

// CreateRule adds an ACL rule.
func (c *Client) CreateRule(ctx context.Context, r Rule) (Rule, error) {
	resp, err := c.policy.CreateRule(ctx, &mcv1.CreateRuleRequest{Rule: r.pb()})
	if err != nil {
		return Rule{}, c.conn.Err(err)
	}
	return ruleOf(resp.GetRule()), nil
}

// UpdateRule replaces ACL rule id.
func (c *Client) UpdateRule(ctx context.Context, id int64, r Rule) (Rule, error) {
	resp, err := c.policy.UpdateRule(ctx, &mcv1.UpdateRuleRequest{Id: id, Rule: r.pb()})
	if err != nil {
		return Rule{}, c.conn.Err(err)
	}
	return ruleOf(resp.GetRule()), nil
}

// DeleteRule removes ACL rule id.
func (c *Client) DeleteRule(ctx context.Context, id int64) error {
	_, err := c.policy.DeleteRule(ctx, &mcv1.DeleteRuleRequest{Id: id})
	return c.conn.Err(err)
}

// Limits lists the issuance limits in evaluation order.
func (c *Client) Limits(ctx context.Context) ([]Limit, error) {
	resp, err := c.policy.ListLimits(ctx, &mcv1.ListLimitsRequest{})
	if err != nil {
		return nil, c.conn.Err(err)
	}
	out := make([]Limit, 0, len(resp.GetLimits()))
	for _, l := range resp.GetLimits() {
		out = append(out, limitOf(l))
	}
	return out, nil
}

// CreateLimit adds an issuance limit.
func (c *Client) CreateLimit(ctx context.Context, l Limit) (Limit, error) {
	resp, err := c.policy.CreateLimit(ctx, &mcv1.CreateLimitRequest{Limit: l.pb()})
	if err != nil {
		return Limit{}, c.conn.Err(err)
	}
	return limitOf(resp.GetLimit()), nil
}

// UpdateLimit replaces issuance limit id.
func (c *Client) UpdateLimit(ctx context.Context, id int64, l Limit) (Limit, error) {
	resp, err := c.policy.UpdateLimit(ctx, &mcv1.UpdateLimitRequest{Id: id, Limit: l.pb()})
	if err != nil {
		return Limit{}, c.conn.Err(err)
	}
	return limitOf(resp.GetLimit()), nil
}

// DeleteLimit removes issuance limit id.
func (c *Client) DeleteLimit(ctx context.Context, id int64) error {
	_, err := c.policy.DeleteLimit(ctx, &mcv1.DeleteLimitRequest{Id: id})
	return c.conn.Err(err)
}

// CheckRequest is a hypothetical caller and request to evaluate.
type CheckRequest struct {
	Account, AccountType       string
	Roles                      []string
	Mount, Operation, Resource string
	DNSNames, IPAddresses      []string
}

// NameDecision is one name's decision.
type NameDecision struct {
	Name    string `json:"name"`
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
}

// CheckResult is the policy's answer.
type CheckResult struct {
	Allowed bool           `json:"allowed"`
	Reason  string         `json:"reason"`
	Names   []NameDecision `json:"names"`
}

// Check evaluates the policy without acting.
func (c *Client) Check(ctx context.Context, r CheckRequest) (CheckResult, error) {
	resp, err := c.policy.Check(ctx, &mcv1.CheckRequest{
		Account: r.Account, Roles: r.Roles, AccountType: r.AccountType, Mount: r.Mount, Operation: r.Operation,
		Resource: r.Resource, DnsNames: r.DNSNames, IpAddresses: r.IPAddresses,
	})
	if err != nil {
		return CheckResult{}, c.conn.Err(err)
	}
	out := CheckResult{Allowed: resp.GetAllowed(), Reason: resp.GetReason(), Names: []NameDecision{}}
	for _, n := range resp.GetNames() {
		out.Names = append(out.Names, NameDecision{Name: n.GetName(), Allowed: n.GetAllowed(), Reason: n.GetReason()})
	}
	return out, nil
}
