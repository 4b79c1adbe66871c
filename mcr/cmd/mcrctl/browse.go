package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcr/client"
)

// size formats bytes for tables.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func reposCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "repos", Short: "List and show repositories",
		Example: "  mcrctl repos list\n  mcrctl repos show team/app"}
	list := &cobra.Command{Use: "list", Short: "List the repositories you may pull", Args: cobra.NoArgs,
		Example: "  mcrctl repos list\n  mcrctl repos list --json",
		RunE: withClient(func(ctx context.Context, c *client.Client, cmd *cobra.Command, _ []string) error {
			repos, err := c.ListRepositories(ctx)
			if err != nil {
				return err
			}
			return tool.Print(cmd.OutOrStdout(), repos, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "REPOSITORY\tTAGS\tMANIFESTS\tSIZE\tYOU MAY\tCREATED")
				for _, r := range repos {
					fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\n", r.Name, r.Tags, r.Manifests, size(r.SizeBytes), strings.Join(r.Actions, ","), when(r.CreatedAt))
				}
			})
		})}
	show := &cobra.Command{Use: "show REPOSITORY", Short: "Show a repository's tags and manifests", Args: cobra.ExactArgs(1),
		Example: "  mcrctl repos show team/app",
		RunE: withClient(func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			r, err := c.GetRepository(ctx, args[0])
			if err != nil {
				return err
			}
			return tool.Print(cmd.OutOrStdout(), r, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "repository:\t%s\nsize:\t%s\n\n", r.Repository.Name, size(r.Repository.SizeBytes))
				fmt.Fprintln(w, "DIGEST\tTYPE\tSIZE\tTAGS\tSUBJECT\tPUSHED")
				for _, m := range r.Manifests {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", short(m.Digest), m.MediaType, size(m.SizeBytes), strings.Join(m.Tags, ","), short(m.Subject), when(m.CreatedAt))
				}
			})
		})}
	cmd.AddCommand(list, show)
	return cmd
}

func tagsCmd() *cobra.Command {
	return &cobra.Command{Use: "tags REPOSITORY", Short: "List a repository's tags", Args: cobra.ExactArgs(1),
		Example: "  mcrctl tags team/app\n  mcrctl tags team/app --json",
		RunE: withClient(func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			r, err := c.GetRepository(ctx, args[0])
			if err != nil {
				return err
			}
			return tool.Print(cmd.OutOrStdout(), r.Tags, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "TAG\tDIGEST\tTYPE\tSIZE\tUPDATED")
				for _, t := range r.Tags {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Digest, t.MediaType, size(t.SizeBytes), when(t.UpdatedAt))
				}
			})
		})}
}

func manifestCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "manifest", Short: "Inspect manifests",
		Example: "  mcrctl manifest inspect team/app v1.2.0"}
	var raw bool
	inspect := &cobra.Command{Use: "inspect REPOSITORY TAG|DIGEST", Short: "Show a manifest: config, layers and sizes, platforms, referrers",
		Args:    cobra.ExactArgs(2),
		Example: "  mcrctl manifest inspect team/app v1.2.0\n  mcrctl manifest inspect team/app sha256:4f1c... --raw\n  mcrctl manifest inspect team/app v1.2.0 --json",
		RunE: withClient(func(ctx context.Context, c *client.Client, cmd *cobra.Command, args []string) error {
			m, err := c.GetManifest(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			if raw {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), m.Content)
				return err
			}
			return tool.Print(cmd.OutOrStdout(), m, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "digest:\t%s\ntype:\t%s\ntags:\t%s\ntotal size:\t%s\n", m.Manifest.Digest, m.Manifest.MediaType,
					strings.Join(m.Manifest.Tags, ", "), size(m.TotalSizeBytes))
				if m.Manifest.ArtifactType != "" {
					fmt.Fprintf(w, "artifact type:\t%s\n", m.Manifest.ArtifactType)
				}
				if m.Manifest.Subject != "" {
					fmt.Fprintf(w, "subject:\t%s\n", m.Manifest.Subject)
				}
				section := func(title string, list []client.Descriptor, platform bool) {
					if len(list) == 0 {
						return
					}
					fmt.Fprintf(w, "\n%s\n", title)
					for _, d := range list {
						p := ""
						if platform {
							p = d.Platform
						}
						missing := ""
						if !d.Present {
							missing = "(not in repository)"
						}
						fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", d.Digest, size(d.SizeBytes), d.MediaType, p, missing)
					}
				}
				if m.Config != nil {
					section("CONFIG", []client.Descriptor{*m.Config}, false)
				}
				section("LAYERS", m.Layers, false)
				section("PLATFORMS", m.Manifests, true)
				section("REFERRERS", m.Referrers, false)
			})
		})}
	inspect.Flags().BoolVar(&raw, "raw", false, "print the manifest exactly as pushed")
	cmd.AddCommand(inspect)
	return cmd
}
