// Package report renders the admin API's answers for people: the tables
// of mcproxyctl and the summary that both "mcproxyctl status" and
// "mc-proxy status" print. With --json the tools print the client's
// types instead (mcdsl/cli.Print).
package report

import (
	"fmt"
	"io"

	"git.metacircular.net/metacircular/mcproxy/client"
)

// Status writes the summary: database, counts, open connections, one
// row per listener and the TOML/database divergence.
func Status(w io.Writer, st client.Status) {
	fmt.Fprintf(w, "database:\t%s\nroutes:\t%d\nfirewall rules:\t%d\nopen connections:\t%d\n\n",
		st.Database, st.Routes, st.FirewallRules, st.OpenConnections)
	fmt.Fprintln(w, "LISTENER\tADDRESS\tROUTES")
	for _, l := range st.Listeners {
		fmt.Fprintf(w, "%s\t%s\t%d\n", l.Name, dash(l.Addr), l.Routes)
	}
	if len(st.Divergence) == 0 {
		fmt.Fprintln(w, "\nmc-proxy.toml and the database agree")
		return
	}
	fmt.Fprintf(w, "\nmc-proxy.toml and the database differ (%d); the database is served:\n", len(st.Divergence))
	for _, d := range st.Divergence {
		fmt.Fprintf(w, "  %s\n", d)
	}
}

// Routes writes one row per route.
func Routes(w io.Writer, routes []client.Route) {
	fmt.Fprintln(w, "LISTENER\tHOSTNAME\tMODE\tBACKEND\tBACKEND PROTOCOL\tBACKEND TLS\tPROXY PROTOCOL\tCERT")
	for _, r := range routes {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Listener, r.Hostname, r.Mode, r.Backend,
			dash(r.BackendProtocol), yes(r.BackendTLS), yes(r.SendProxyProtocol), dash(r.TLSCert))
	}
}

// Rules writes one row per firewall rule.
func Rules(w io.Writer, rules []client.Rule) {
	fmt.Fprintln(w, "KIND\tVALUE\tREASON")
	for _, r := range rules {
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.Kind, r.Value, dash(r.Reason))
	}
}

// RouteAdded is the line for a route stored by AddRoute.
func RouteAdded(w io.Writer, r client.Route, created bool) {
	verb := "replaced"
	if created {
		verb = "added"
	}
	mode := r.Mode
	if r.BackendProtocol != "" {
		mode += ", " + r.BackendProtocol
	}
	fmt.Fprintf(w, "%s route %s/%s -> %s (%s)\n", verb, r.Listener, r.Hostname, r.Backend, mode)
}

// RuleAdded is the line for a rule stored by AddFirewallRule.
func RuleAdded(w io.Writer, r client.Rule, created bool) {
	verb := "updated"
	if created {
		verb = "added"
	}
	fmt.Fprintf(w, "%s firewall rule %s:%s\n", verb, r.Kind, r.Value)
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
