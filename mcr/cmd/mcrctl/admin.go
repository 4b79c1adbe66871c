package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"git.metacircular.net/metacircular/mcr/client"
)

func policyTable(w *tabwriter.Writer, list []client.Policy) {
	fmt.Fprintln(w, "ID\tPRIORITY\tEFFECT\tREPOSITORY\tACCOUNTS\tROLES\tTYPES\tACTIONS\tDESCRIPTION")
	dash := func(l []string) string {
		if len(l) == 0 {
			return "-"
		}
		return strings.Join(l, ",")
	}
	for _, p := range list {
		fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Priority, p.Effect, p.Repository, dash(p.Accounts),
			dash(p.Roles), dash(p.AccountTypes), dash(p.Actions), p.Description)
	}
}

func policiesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policies", Short: "List, add, update and delete access rules (admin)",
		Long: `Access rules decide who may pull, push and delete in which repositories.
Each rule has an effect (allow or deny), a repository glob (* any run of
characters, / included; ? one character), the callers it names (accounts —
"*" for any signed-in account —, roles, account types human, system or
anonymous) and actions. Rules are evaluated by priority, lowest first; the
first rule naming the caller, the repository and the action decides;
nothing matching means no. Admins may do everything; the agent accounts
(mcp-agent) pull everything unless a rule denies it.`,
		Example: "  mcrctl policies list\n  mcrctl policies add --repository 'team/*' --role user --actions pull,push"}
	list := &cobra.Command{Use: "list", Short: "List the rules in evaluation order", Args: cobra.NoArgs,
		Example: "  mcrctl policies list\n  mcrctl policies list --json",
		RunE: withClient(func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			list, agents, err := c.ListPolicies(ctx)
			if err != nil {
				return err
			}
			return tool.Print(cmd.OutOrStdout(), map[string]any{"policies": list, "agent_accounts": agents}, func(w *tabwriter.Writer) {
				policyTable(w, list)
				fmt.Fprintf(w, "\nagent accounts (pull everything unless denied): %s\n", strings.Join(agents, ", "))
			})
		})}
	var p client.Policy
	var actions string
	ruleFlags := func(c *cobra.Command) {
		c.Flags().Int32Var(&p.Priority, "priority", 100, "evaluation order, lowest first")
		c.Flags().StringVar(&p.Effect, "effect", "allow", "allow or deny")
		c.Flags().StringVar(&p.Repository, "repository", "", "repository name or glob (required)")
		c.Flags().StringSliceVar(&p.Accounts, "account", nil, "account names (repeatable; * = any signed-in account)")
		c.Flags().StringSliceVar(&p.Roles, "role", nil, "MCIAS roles (repeatable)")
		c.Flags().StringSliceVar(&p.AccountTypes, "account-type", nil, "human, system or anonymous (repeatable)")
		c.Flags().StringVar(&actions, "actions", "pull", "comma-separated: pull, push, delete")
		c.Flags().StringVar(&p.Description, "description", "", "why the rule exists")
	}
	one := func(cmd *cobra.Command, r client.Policy) error {
		return tool.Print(cmd.OutOrStdout(), r, func(w *tabwriter.Writer) { policyTable(w, []client.Policy{r}) })
	}
	add := &cobra.Command{Use: "add", Short: "Add a rule", Args: cobra.NoArgs,
		Example: `  mcrctl policies add --repository 'team/*' --role user --actions pull,push
  mcrctl policies add --repository 'public/*' --account-type anonymous --actions pull
  mcrctl policies add --priority 5 --effect deny --repository 'secret/*' --account mcp-agent --actions pull`,
		RunE: withClient(func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			p.Actions = strings.Split(actions, ",")
			r, err := c.CreatePolicy(ctx, p)
			if err != nil {
				return err
			}
			return one(cmd, r)
		})}
	ruleFlags(add)
	update := &cobra.Command{Use: "update ID", Short: "Replace a rule (give every field)", Args: cobra.ExactArgs(1),
		Example: "  mcrctl policies update 3 --repository 'team/*' --role user --actions pull",
		RunE: withClient(func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("policy id %q: want a number (see mcrctl policies list)", args[0])
			}
			p.Actions = strings.Split(actions, ",")
			r, err := c.UpdatePolicy(ctx, id, p)
			if err != nil {
				return err
			}
			return one(cmd, r)
		})}
	ruleFlags(update)
	del := &cobra.Command{Use: "delete ID", Short: "Delete a rule", Args: cobra.ExactArgs(1),
		Example: "  mcrctl policies delete 3",
		RunE: withClient(func(ctx context.Context, c *client.Client, _ *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("policy id %q: want a number (see mcrctl policies list)", args[0])
			}
			return c.DeletePolicy(ctx, id)
		})}
	cmd.AddCommand(list, add, update, del)
	return cmd
}

// progressBar draws "stage [=====>    ]  45%  450/1000" on a terminal.
type progressBar struct {
	w     io.Writer
	tty   bool
	stage string
}

func (b *progressBar) update(stage string, done, total int64) {
	if !b.tty || total == 0 {
		return
	}
	if stage != b.stage && b.stage != "" {
		fmt.Fprintln(b.w)
	}
	b.stage = stage
	const width = 30
	fill := int(done * width / total)
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	fmt.Fprintf(b.w, "\r%-8s [%s] %3d%%  %d/%d", stage, bar, done*100/total, done, total)
}

func (b *progressBar) finish() {
	if b.tty && b.stage != "" {
		fmt.Fprintln(b.w)
	}
}

func gcCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{Use: "gc", Short: "Collect garbage now: unreferenced blobs, abandoned uploads (admin)",
		Long: `gc runs MCR's online garbage collector on the server while it serves. A blob
is deleted only when no manifest in any repository references it and nothing
used it within the grace window (gc.grace); upload sessions idle past
gc.upload_ttl and empty repositories go too. --dry-run lists what would be
deleted. A progress bar shows on a terminal.`,
		Example: "  mcrctl gc --dry-run\n  mcrctl gc\n  mcrctl gc --json",
		Args:    cobra.NoArgs,
		RunE: withClient(func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			errOut := cmd.ErrOrStderr()
			bar := &progressBar{w: errOut}
			if f, ok := errOut.(interface{ Fd() uintptr }); ok {
				bar.tty = term.IsTerminal(int(f.Fd())) //nolint:gosec // a file descriptor fits in int
			}
			rep, err := c.RunGC(ctx, dryRun, bar.update)
			bar.finish()
			if err != nil {
				return err
			}
			verb := "deleted"
			if dryRun {
				verb = "would delete"
			}
			return tool.Print(cmd.OutOrStdout(), rep, func(w *tabwriter.Writer) {
				for _, b := range rep.Blobs {
					fmt.Fprintf(w, "%s\t%s\t%s\n", verb, b.Digest, size(b.SizeBytes))
				}
				fmt.Fprintf(w, "%s %d blobs (%s), %d uploads, %d orphan files, %d empty repositories; %d blobs kept (%s)\n",
					verb, len(rep.Blobs), size(rep.BytesFreed), len(rep.Uploads), len(rep.OrphanFiles), len(rep.Repositories),
					rep.BlobsKept, rep.FinishedAt.Sub(rep.StartedAt).Round(time.Millisecond))
			})
		})}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be deleted, delete nothing")
	return cmd
}

func auditCmd() *cobra.Command {
	var f client.AuditFilter
	var since time.Duration
	cmd := &cobra.Command{Use: "audit", Short: "Show the audit log: pushes, pulls, deletes, policy changes (admin)",
		Example: "  mcrctl audit --repository team/app\n  mcrctl audit --action push --since 24h\n  mcrctl audit --actor alice --limit 20 --json",
		Args:    cobra.NoArgs,
		RunE: withClient(func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			if since > 0 {
				f.Since = time.Now().Add(-since)
			}
			evs, err := c.ListEvents(ctx, f)
			if err != nil {
				return err
			}
			return tool.Print(cmd.OutOrStdout(), evs, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tWHEN\tWHO\tACTION\tREPOSITORY\tREFERENCE\tDIGEST\tDETAIL")
				for _, e := range evs {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.At.Local().Format(time.DateTime), e.Actor, e.Action,
						e.Repository, e.Reference, short(e.Digest), e.Detail)
				}
			})
		})}
	cmd.Flags().StringVar(&f.Repository, "repository", "", "only this repository")
	cmd.Flags().StringVar(&f.Actor, "actor", "", "only this account")
	cmd.Flags().StringVar(&f.Action, "action", "", "only this action (push, pull, delete, policy, gc)")
	cmd.Flags().DurationVar(&since, "since", 0, "only events newer than this (e.g. 24h)")
	cmd.Flags().Int64Var(&f.BeforeID, "before", 0, "page back: events older than this id")
	cmd.Flags().Int32Var(&f.Limit, "limit", 100, "at most this many events (max 1000)")
	return cmd
}
