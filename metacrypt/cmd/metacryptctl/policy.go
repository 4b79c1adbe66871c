package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/metacrypt/client"
)

func policyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Manage ACL rules and issuance limits (admin)",
		Long: `Rules decide who may do which operation (read, issue, sign, renew, revoke,
manage) on which resource ("issuer/services", "issuer/*", "certs", "root") of
which mount. Limits decide which names each caller may put in a certificate.
Both are evaluated by ascending priority (deny first at equal priority); the
first match decides; nothing matching denies. Admins bypass both.`,
		Example: `  metacryptctl policy rules add --account mcp-agent --operations issue,sign,renew --resources issuer/services
  metacryptctl policy limits add --account mcp-agent --names '*.svc.mcp.metacircular.net'
  metacryptctl policy check --account mcp-agent --operation issue --resource issuer/services --dns x.svc.mcp.metacircular.net`,
	}
	cmd.AddCommand(rulesCmd(), limitsCmd(), checkCmd())
	return cmd
}

// subjectFlags are the caller-selecting flags of rules and limits.
func subjectFlags(cmd *cobra.Command, s *client.Subject) {
	cmd.Flags().StringSliceVar(&s.Accounts, "account", nil, "MCIAS username (repeatable; none: anyone)")
	cmd.Flags().StringSliceVar(&s.Roles, "role", nil, "role: admin, user, guest (repeatable)")
	cmd.Flags().StringSliceVar(&s.AccountTypes, "account-type", nil, "human or system (repeatable)")
}

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("id %q: want a positive integer (see the list command)", s)
	}
	return id, nil
}

func subjectString(s client.Subject) string {
	out := ""
	for _, p := range []struct {
		k string
		v []string
	}{{"account", s.Accounts}, {"role", s.Roles}, {"type", s.AccountTypes}} {
		if len(p.v) > 0 {
			if out != "" {
				out += " "
			}
			out += p.k + "=" + joinOr(p.v, "")
		}
	}
	if out == "" {
		return "anyone"
	}
	return out
}

func rulesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "List, add, update and delete ACL rules",
		Example: "  metacryptctl policy rules list\n  metacryptctl policy rules delete 3"}
	table := func(list []client.Rule) func(*tabwriter.Writer) {
		return func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "ID\tPRIORITY\tEFFECT\tWHO\tMOUNTS\tOPERATIONS\tRESOURCES\tDESCRIPTION")
			for _, r := range list {
				fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Priority, r.Effect, subjectString(r.Subject),
					joinOr(r.Mounts, "*"), joinOr(r.Operations, "*"), joinOr(r.Resources, "*"), r.Description)
			}
		}
	}
	list := &cobra.Command{Use: "list", Short: "List the rules in evaluation order", Args: cobra.NoArgs,
		Example: "  metacryptctl policy rules list --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				l, err := c.Rules(cmd.Context())
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, table(l))
			})
		}}
	ruleFlags := func(cmd *cobra.Command, r *client.Rule) {
		subjectFlags(cmd, &r.Subject)
		cmd.Flags().Int32Var(&r.Priority, "priority", 100, "lower is evaluated first")
		cmd.Flags().StringVar(&r.Effect, "effect", "allow", "allow or deny")
		cmd.Flags().StringSliceVar(&r.Mounts, "mounts", nil, "mount names or globs (none: every mount)")
		cmd.Flags().StringSliceVar(&r.Operations, "operations", nil, "read, issue, sign, renew, revoke, manage; transit: encrypt, decrypt, rewrap, datakey, verify, hmac, export; u2u: send, open; or * (none: all)")
		cmd.Flags().StringSliceVar(&r.Resources, "resources", nil, "resource globs: issuer/NAME, certs, root; ssh: ca, profile/NAME, profiles, certs, krl; transit: key/NAME, keys; u2u: user/NAME, users (none: all)")
		cmd.Flags().StringVar(&r.Description, "description", "", "why the rule exists")
	}
	var nr client.Rule
	add := &cobra.Command{Use: "add", Short: "Add a rule", Args: cobra.NoArgs,
		Example: `  metacryptctl policy rules add --account mcp-agent --mounts pki --operations issue,sign,renew,revoke --resources issuer/services
  metacryptctl policy rules add --role user --operations read --description "humans may look"`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				r, err := c.CreateRule(cmd.Context(), nr)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), r, table([]client.Rule{r}))
			})
		}}
	ruleFlags(add, &nr)
	var ur client.Rule
	update := &cobra.Command{Use: "update ID", Short: "Replace a rule (every field, as for add)", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl policy rules update 3 --account mcp-agent --operations issue,sign --resources 'issuer/*'",
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				r, err := c.UpdateRule(cmd.Context(), id, ur)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), r, table([]client.Rule{r}))
			})
		}}
	ruleFlags(update, &ur)
	del := &cobra.Command{Use: "delete ID", Short: "Delete a rule", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl policy rules delete 3",
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				if err := c.DeleteRule(cmd.Context(), id); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "rule %d deleted\n", id)
				return nil
			})
		}}
	cmd.AddCommand(list, add, update, del)
	return cmd
}

func limitsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "limits", Short: "List, add, update and delete issuance limits",
		Example: "  metacryptctl policy limits list\n  metacryptctl policy limits delete 4"}
	table := func(list []client.Limit) func(*tabwriter.Writer) {
		return func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "ID\tPRIORITY\tEFFECT\tWHO\tMOUNTS\tNAMES\tIP RANGES\tWILDCARDS\tDESCRIPTION")
			for _, l := range list {
				fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%v\t%s\n", l.ID, l.Priority, l.Effect, subjectString(l.Subject),
					joinOr(l.Mounts, "*"), joinOr(l.Names, "-"), joinOr(l.IPRanges, "-"), l.Wildcards, l.Description)
			}
		}
	}
	list := &cobra.Command{Use: "list", Short: "List the limits in evaluation order", Args: cobra.NoArgs,
		Example: "  metacryptctl policy limits list --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				l, err := c.Limits(cmd.Context())
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, table(l))
			})
		}}
	limitFlags := func(cmd *cobra.Command, l *client.Limit) {
		subjectFlags(cmd, &l.Subject)
		cmd.Flags().Int32Var(&l.Priority, "priority", 100, "lower is evaluated first")
		cmd.Flags().StringVar(&l.Effect, "effect", "allow", "allow or deny")
		cmd.Flags().StringSliceVar(&l.Mounts, "mounts", nil, "mount names or globs (none: every mount)")
		cmd.Flags().StringSliceVar(&l.Names, "names", nil, "name patterns: host.example.net, *.svc.example.net (one label), **.example.net (any depth)")
		cmd.Flags().StringSliceVar(&l.IPRanges, "ip-ranges", nil, "CIDR prefixes IP SANs must fall in")
		cmd.Flags().BoolVar(&l.Wildcards, "wildcards", false, "allow wildcard certificate names")
		cmd.Flags().StringVar(&l.Description, "description", "", "why the limit exists")
	}
	var nl client.Limit
	add := &cobra.Command{Use: "add", Short: "Add a limit", Args: cobra.NoArgs,
		Example: `  metacryptctl policy limits add --account mcp-agent --names '*.svc.mcp.metacircular.net' --ip-ranges 10.0.0.0/8
  metacryptctl policy limits add --account agent-edge --effect deny --priority 10 --names 'mcp.metacircular.net,**.mcp.metacircular.net'
  metacryptctl policy limits add --account agent-edge --names 'metacircular.net,**.metacircular.net'`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				l, err := c.CreateLimit(cmd.Context(), nl)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, table([]client.Limit{l}))
			})
		}}
	limitFlags(add, &nl)
	var ul client.Limit
	update := &cobra.Command{Use: "update ID", Short: "Replace a limit (every field, as for add)", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl policy limits update 4 --account mcp-agent --names '*.svc.mcp.metacircular.net'",
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				l, err := c.UpdateLimit(cmd.Context(), id, ul)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, table([]client.Limit{l}))
			})
		}}
	limitFlags(update, &ul)
	del := &cobra.Command{Use: "delete ID", Short: "Delete a limit", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl policy limits delete 4",
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID(args[0])
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				if err := c.DeleteLimit(cmd.Context(), id); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "limit %d deleted\n", id)
				return nil
			})
		}}
	cmd.AddCommand(list, add, update, del)
	return cmd
}

func checkCmd() *cobra.Command {
	var r client.CheckRequest
	cmd := &cobra.Command{
		Use:     "check",
		Short:   "Explain what the policy decides for a caller, without acting",
		Example: `  metacryptctl policy check --account mcp-agent --account-type system --mount pki --operation issue --resource issuer/services --dns x.svc.mcp.metacircular.net --dns svc.mcp.metacircular.net`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				res, err := c.Check(cmd.Context(), r)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), res, func(w *tabwriter.Writer) {
					if r.Operation != "" {
						fmt.Fprintf(w, "%s %s\t%v\t%s\n", r.Operation, r.Resource, res.Allowed, res.Reason)
					}
					for _, n := range res.Names {
						fmt.Fprintf(w, "%s\t%v\t%s\n", n.Name, n.Allowed, n.Reason)
					}
				})
			})
		},
	}
	cmd.Flags().StringVar(&r.Account, "account", "", "MCIAS username")
	cmd.Flags().StringSliceVar(&r.Roles, "role", nil, "role (repeatable)")
	cmd.Flags().StringVar(&r.AccountType, "account-type", "", "human or system")
	cmd.Flags().StringVar(&r.Mount, "mount", "pki", "mount")
	cmd.Flags().StringVar(&r.Operation, "operation", "", "operation to check (none: names only)")
	cmd.Flags().StringVar(&r.Resource, "resource", "", "resource, e.g. issuer/services")
	cmd.Flags().StringSliceVar(&r.DNSNames, "dns", nil, "DNS name to check against the limits (repeatable)")
	cmd.Flags().StringSliceVar(&r.IPAddresses, "ip", nil, "IP address to check (repeatable)")
	_ = cmd.MarkFlagRequired("account")
	return cmd
}

func requestCmd() *cobra.Command {
	var path, data string
	cmd := &cobra.Command{
		Use:   "request MOUNT OPERATION",
		Short: "Send a generic engine request (POST /v1/engine/request)",
		Long: `request runs any engine operation by name with JSON data, under the same
policy as the typed commands. Output is always JSON.`,
		Example: `  metacryptctl request pki issue --path issuer/services --data '{"dns_names":["mcq.svc.mcp.metacircular.net"]}'
  metacryptctl request pki list --data '{"expiring_within":"30d"}'
  metacryptctl request transit encrypt --path key/orders --data '{"plaintext":"aGVsbG8="}'
  metacryptctl request ssh get-ca`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d map[string]any
			if data != "" {
				if err := json.Unmarshal([]byte(data), &d); err != nil {
					return fmt.Errorf("--data: %w", err)
				}
			}
			return withClient(true, func(c *client.Client) error {
				out, err := c.Request(cmd.Context(), args[0], args[1], path, d)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			})
		},
	}
	cmd.Flags().StringVar(&path, "path", "", "the operation's resource (issuer/NAME, cert/SERIAL, profile/NAME, key/NAME, user/NAME)")
	cmd.Flags().StringVar(&data, "data", "", "the operation's fields as a JSON object")
	return cmd
}
