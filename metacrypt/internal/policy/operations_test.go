package policy_test

import (
	"slices"
	"testing"

	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/transit"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/u2u"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

// TestEngineOperationsAccepted checks every ACL operation an engine
// checks is one a rule may name: a rule naming it validates and is
// applied to that operation only.
func TestEngineOperationsAccepted(t *testing.T) {
	sshOps := []string{policy.OpManage, policy.OpRead, policy.OpSign, policy.OpRevoke}
	alice := engine.Caller{Username: "alice", Subject: "s-alice"}
	for name, ops := range map[string][]string{"transit": transit.ACLOperations, "u2u": u2u.ACLOperations, "ssh": sshOps} {
		for _, op := range ops {
			if !slices.Contains(policy.Operations, op) {
				t.Errorf("%s operation %q is not in policy.Operations", name, op)
			}
			r := policy.Rule{ID: 1, Effect: policy.Allow, Subject: policy.Subject{Accounts: []string{"alice"}}, Operations: []string{op}, Resources: []string{"key/*"}}
			if err := r.Validate(); err != nil {
				t.Errorf("rule naming %s operation %q: %v", name, op, err)
			}
			for _, other := range ops {
				if got := policy.EvaluateRules([]policy.Rule{r}, alice, "m", other, "key/k").Allowed; got != (other == op) {
					t.Errorf("rule allowing only %s decides %v for %s", op, got, other)
				}
			}
		}
	}
	if err := (policy.Rule{Effect: policy.Allow, Operations: []string{"encrypt-everything"}}).Validate(); err == nil {
		t.Error("an unknown operation validates")
	}
}
