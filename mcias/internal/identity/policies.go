package identity

import (
	"context"
	"fmt"

	"git.metacircular.net/metacircular/mcdsl/auth"
	"git.metacircular.net/metacircular/mcias/internal/policy"
)

// ListPolicies returns the rules in evaluation order (admin only).
func (s *Service) ListPolicies(ctx context.Context, caller *auth.Identity) ([]policy.Rule, error) {
	if !caller.IsAdmin() {
		return nil, ErrForbidden
	}
	return s.st.ListPolicies(ctx)
}

// GetPolicy returns one rule (admin only).
func (s *Service) GetPolicy(ctx context.Context, caller *auth.Identity, id int64) (policy.Rule, error) {
	if !caller.IsAdmin() {
		return policy.Rule{}, ErrForbidden
	}
	r, err := s.st.GetPolicy(ctx, id)
	return r, mapStore(err)
}

func normalizeRule(r *policy.Rule) error {
	for _, l := range []*[]string{&r.Roles, &r.AccountTypes, &r.Actions, &r.ServiceNames, &r.RequiredTags} {
		if *l == nil {
			*l = []string{}
		}
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// CreatePolicy adds a rule (admin only).
func (s *Service) CreatePolicy(ctx context.Context, caller *auth.Identity, r policy.Rule) (policy.Rule, error) {
	if !caller.IsAdmin() {
		return policy.Rule{}, ErrForbidden
	}
	if err := normalizeRule(&r); err != nil {
		return policy.Rule{}, err
	}
	out, err := s.st.CreatePolicy(ctx, r)
	if err == nil {
		s.logger.Info("policy created", "id", out.ID, "effect", out.Effect, "priority", out.Priority, "by", caller.Username)
	}
	return out, err
}

// UpdatePolicy replaces a rule (admin only).
func (s *Service) UpdatePolicy(ctx context.Context, caller *auth.Identity, r policy.Rule) (policy.Rule, error) {
	if !caller.IsAdmin() {
		return policy.Rule{}, ErrForbidden
	}
	if err := normalizeRule(&r); err != nil {
		return policy.Rule{}, err
	}
	out, err := s.st.UpdatePolicy(ctx, r)
	if err != nil {
		return policy.Rule{}, mapStore(err)
	}
	s.logger.Info("policy updated", "id", out.ID, "by", caller.Username)
	return out, nil
}

// DeletePolicy removes a rule (admin only).
func (s *Service) DeletePolicy(ctx context.Context, caller *auth.Identity, id int64) error {
	if !caller.IsAdmin() {
		return ErrForbidden
	}
	if err := s.st.DeletePolicy(ctx, id); err != nil {
		return mapStore(err)
	}
	s.logger.Info("policy deleted", "id", id, "by", caller.Username)
	return nil
}
