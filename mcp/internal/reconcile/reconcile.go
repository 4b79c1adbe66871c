// Package reconcile computes the plan of "mcp sync": a pure set
// difference between the definitions in the services directory and what
// the nodes' agents run. Nothing here talks to anyone.
package reconcile

import (
	"fmt"
	"sort"
)

// Actions.
const (
	Deploy   = "deploy"
	Redeploy = "redeploy"
	Undeploy = "undeploy"
	Start    = "start"
)

// Desired is one definition: its service, node, hash and whether it is
// active.
type Desired struct {
	Service string
	Node    string
	Hash    string
	Active  bool
}

// Running is one service an agent runs.
type Running struct {
	Service string
	Node    string
	Hash    string
	// Stopped reports a service stopped by an operator.
	Stopped bool
}

// Action is one step of the plan.
type Action struct {
	Action  string
	Service string
	Node    string
	Reason  string
}

func (a Action) String() string {
	return fmt.Sprintf("%-8s %s on %s (%s)", a.Action, a.Service, a.Node, a.Reason)
}

// Plan is what sync does: deploy the new, redeploy the changed, start the
// active ones found stopped, undeploy the inactive and the absent. A
// service whose definition moved to another node is undeployed from the
// old one and deployed on the new one. Actions are ordered: undeploys
// last, so a moved service is up on its new node before it leaves the
// old one.
func Plan(desired []Desired, running []Running) []Action {
	type key struct{ svc, node string }
	have := map[key]Running{}
	for _, r := range running {
		have[key{r.Service, r.Node}] = r
	}
	want := map[key]bool{}
	var out, removals []Action
	for _, d := range desired {
		k := key{d.Service, d.Node}
		r, ok := have[k]
		switch {
		case !d.Active:
			if ok {
				removals = append(removals, Action{Undeploy, d.Service, d.Node, "definition is inactive"})
			}
			continue
		case !ok:
			out = append(out, Action{Deploy, d.Service, d.Node, "not deployed"})
		case r.Hash != d.Hash:
			out = append(out, Action{Redeploy, d.Service, d.Node, "definition changed"})
		case r.Stopped:
			out = append(out, Action{Start, d.Service, d.Node, "active but stopped"})
		}
		want[k] = true
	}
	for _, r := range running {
		if !want[key{r.Service, r.Node}] && !removed(removals, r) {
			removals = append(removals, Action{Undeploy, r.Service, r.Node, "no definition for this node"})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	sort.SliceStable(removals, func(i, j int) bool { return removals[i].Service < removals[j].Service })
	return append(out, removals...)
}

func removed(list []Action, r Running) bool {
	for _, a := range list {
		if a.Service == r.Service && a.Node == r.Node {
			return true
		}
	}
	return false
}
