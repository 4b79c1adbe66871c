package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/cli"
	"git.metacircular.net/metacircular/mcp/internal/imagebuild"
	"git.metacircular.net/metacircular/mcp/internal/spec"
)

func (a *app) validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate [DIR|FILE]",
		Short: "Check service definitions: strict TOML, required keys, pinned images",
		Long: `validate parses every *.toml in the services directory (or DIR, or one FILE)
exactly as deploy does and lists every problem as FILE:LINE: KEY: WHAT —
unknown keys, missing required keys, duplicate component or route names,
a host name routed twice, images without a pinned semantic-version tag
(":latest" is refused), bad modes, restart policies or health checks, and
two files defining one service. It exits 1 if there is any.`,
		Example: "  mcp validate\n  mcp validate ./services\n  mcp validate services/hello.toml",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			} else {
				cfg, err := a.config()
				if err != nil {
					return err
				}
				target = cfg.Services.Dir
			}
			var defs []*spec.Service
			st, err := os.Stat(target)
			if err != nil {
				return err
			}
			if st.IsDir() {
				defs, err = spec.LoadDir(target)
			} else {
				var s *spec.Service
				s, err = spec.ParseFile(target)
				if s != nil {
					defs = append(defs, s)
				}
			}
			var es spec.Errors
			if errors.As(err, &es) {
				for _, e := range es {
					fmt.Fprintln(cmd.ErrOrStderr(), e.Error())
				}
				return &exitError{code: 1, msg: fmt.Sprintf("mcp: %d problem(s) in %s", len(es), target)}
			}
			if err != nil {
				return err
			}
			type row struct {
				Service    string `json:"service"`
				Node       string `json:"node"`
				Components int    `json:"components"`
				Hash       string `json:"hash"`
			}
			rows := make([]row, 0, len(defs))
			for _, d := range defs {
				node := d.Node
				if node == "" {
					node = "tier " + d.Tier
				}
				rows = append(rows, row{d.Name, node, len(d.Components), d.Hash()})
			}
			return cli.Print(cmd.OutOrStdout(), a.asJSON, rows, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "SERVICE\tNODE\tCOMPONENTS\tHASH")
				for _, r := range rows {
					fmt.Fprintf(w, "%s\t%s\t%d\t%.12s\n", r.Service, r.Node, r.Components, r.Hash)
				}
				fmt.Fprintf(w, "%d definition(s) valid\n", len(rows))
			})
		},
	}
}

func (a *app) buildCmd() *cobra.Command {
	var noPush bool
	cmd := &cobra.Command{
		Use:   "build SERVICE",
		Short: "Build a service's images with podman and push them to MCR",
		Long: `build builds each image of the service's [build.images] (repository name =
Dockerfile, relative to the service's path in the build workspace),
tagged with the pinned reference of the component using it, then logs in
to the registry with your MCIAS token and pushes. podman's progress is
shown as it goes.`,
		Example: "  mcp build hello\n  mcp build mcns --no-push",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			sp, err := a.definition(args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			b := &imagebuild.Builder{Podman: cfg.Build.Podman, Workspace: cfg.Build.Workspace, CertDir: cfg.Build.CertDir, Out: out}
			imgs, err := b.Plan(sp)
			if err != nil {
				return err
			}
			ctx, cancel := a.withTimeout(cmd.Context())
			defer cancel()
			var tok string
			if !noPush {
				if tok, err = a.tokenValue(); err != nil {
					return err
				}
			}
			loggedIn := map[string]bool{}
			total := len(imgs) * 2
			if noPush {
				total = len(imgs)
			}
			step := 0
			for _, img := range imgs {
				step++
				fmt.Fprintf(out, "[%d/%d] build %s (%s)\n", step, total, img.Ref, img.Dockerfile)
				if err := b.Build(ctx, img); err != nil {
					return err
				}
				if noPush {
					continue
				}
				if img.Registry != "" && !loggedIn[img.Registry] {
					if err := b.Login(ctx, img.Registry, tok); err != nil {
						return err
					}
					loggedIn[img.Registry] = true
				}
				step++
				fmt.Fprintf(out, "[%d/%d] push %s\n", step, total, img.Ref)
				if err := b.Push(ctx, img); err != nil {
					return err
				}
			}
			fmt.Fprintf(out, "built %d image(s) of %s\n", len(imgs), sp.Name)
			return nil
		},
	}
	cmd.Flags().BoolVar(&noPush, "no-push", false, "build only")
	return cmd
}

const template = `# %[1]s — see mcp/deploy/examples/services for more.
name = "%[1]s"
node = ""

[build.images]
%[1]s = "Dockerfile"

[[components]]
name = "web"
image = "mcr.svc.mcp.metacircular.net:8443/%[1]s:v0.1.0"
volumes = ["/srv/%[1]s:/srv/%[1]s"]

[[components.routes]]
port = 443
mode = "l7"
`

func (a *app) editCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "edit SERVICE",
		Short: "Edit a service definition in $EDITOR, validated before it is saved",
		Long: `edit opens <services dir>/SERVICE.toml (a template for a new service) in
$EDITOR (or vi) as a copy; when the editor exits the copy is validated
and replaces the file only if it is valid — otherwise the problems are
listed and the copy is kept for another try.`,
		Example: "  mcp edit hello\n  EDITOR=nano mcp edit newsvc",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := spec.ValidName(args[0]); err != nil {
				return err
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			path := filepath.Join(cfg.Services.Dir, args[0]+".toml")
			draft := filepath.Join(cfg.Services.Dir, "."+args[0]+".toml.edit")
			data, err := os.ReadFile(draft) //nolint:gosec // the operator's own draft
			if err != nil {
				data, err = os.ReadFile(path) //nolint:gosec // the operator's own definition
			}
			if err != nil {
				data = fmt.Appendf(nil, template, args[0])
			}
			if err := os.MkdirAll(cfg.Services.Dir, 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(draft, data, 0o600); err != nil { //nolint:gosec // SERVICE was checked as a DNS label

				return err
			}
			editor := os.Getenv("EDITOR")
			if editor == "" {
				editor = "vi"
			}
			ed := exec.CommandContext(cmd.Context(), editor, draft) //nolint:gosec // the operator's editor
			ed.Stdin, ed.Stdout, ed.Stderr = os.Stdin, os.Stdout, os.Stderr
			if err := ed.Run(); err != nil {
				return fmt.Errorf("%s: %w (draft kept in %s)", editor, err, draft)
			}
			if _, err := spec.ParseFile(draft); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return fmt.Errorf("not saved: fix the problems above and run mcp edit %s again (draft kept in %s)", args[0], draft)
			}
			if err := os.Rename(draft, path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "saved %s\n", path)
			return nil
		},
	}
}
