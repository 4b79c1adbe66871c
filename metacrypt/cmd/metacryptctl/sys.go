package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/metacrypt/client"
)

func statusTable(s client.Status) func(*tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "initialized\t%v\nsealed\t%v\nkey version\t%d\nversion\t%s\n", s.Initialized, s.Sealed, s.KeyVersion, s.Version)
		if s.UnsealRetryAfter > 0 {
			fmt.Fprintf(w, "unseal retry after\t%s\n", s.UnsealRetryAfter)
		}
	}
}

func initCmd() *cobra.Command {
	var stdin bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Set the unseal password of a new Metacrypt (admin)",
		Long: `init sets the unseal password of a Metacrypt that has none yet, and leaves it
unsealed. The password is asked twice without echo (or read from standard
input with --password-stdin). It is the only key to everything Metacrypt
stores: keep it where you keep your most important secrets; if it is lost,
every key is lost (RUNBOOK.md).`,
		Example: `  metacryptctl init
  printf '%s\n' "$UNSEAL_PASSWORD" | metacryptctl init --password-stdin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(stdin, "New unseal password: ", true)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				s, err := c.Init(cmd.Context(), pw)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), s, statusTable(s))
			})
		},
	}
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func unsealCmd() *cobra.Command {
	var stdin bool
	cmd := &cobra.Command{
		Use:   "unseal",
		Short: "Open the barrier with the unseal password (no login needed)",
		Long: `unseal gives Metacrypt its unseal password after a start (it always starts
sealed). No MCIAS login is needed. Wrong passwords are throttled: after three,
each attempt must wait twice as long as the last, and the command says how
long.`,
		Example: `  metacryptctl unseal
  printf '%s\n' "$UNSEAL_PASSWORD" | metacryptctl unseal --password-stdin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(stdin, "Unseal password: ", false)
			if err != nil {
				return err
			}
			return withClient(false, func(c *client.Client) error {
				s, err := c.Unseal(cmd.Context(), pw)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), s, statusTable(s))
			})
		},
	}
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func sealCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "seal",
		Short: "Seal Metacrypt now, zeroizing its keys (admin)",
		Long: `seal closes the barrier: the master key and every data key are zeroized and
every engine call answers 503 until the next unseal. Use it when a host may be
compromised.`,
		Example: "  metacryptctl seal",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				s, err := c.Seal(cmd.Context())
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), s, statusTable(s))
			})
		},
	}
}

func statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "status",
		Short:   "Show whether Metacrypt is initialized and sealed (no login needed)",
		Example: "  metacryptctl status\n  metacryptctl status --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(false, func(c *client.Client) error {
				s, err := c.Status(cmd.Context())
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), s, statusTable(s))
			})
		},
	}
}

func passwordCmd() *cobra.Command {
	var stdin bool
	cmd := &cobra.Command{
		Use:   "password",
		Short: "Change the unseal password (admin)",
		Long: `password re-wraps the master key under a new unseal password; nothing else
changes. It asks for the current password, then the new one twice. With
--password-stdin it reads two lines: the current password, then the new one.`,
		Example: `  metacryptctl password
  printf '%s\n%s\n' "$OLD" "$NEW" | metacryptctl password --password-stdin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cur, err := readPassword(stdin, "Current unseal password: ", false)
			if err != nil {
				return err
			}
			next, err := readPassword(stdin, "New unseal password: ", true)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				if err := c.ChangePassword(cmd.Context(), cur, next); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "unseal password changed")
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the passwords from standard input, one per line")
	return cmd
}

func rotateCmd() *cobra.Command {
	var stdin bool
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the master key and re-wrap every data key (admin)",
		Long: `rotate makes a new master key, re-wraps every mount's data key under it and
wraps it under the unseal password, which it asks for (Metacrypt never keeps
the password's key). The password stays the same.`,
		Example: "  metacryptctl rotate",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := readPassword(stdin, "Unseal password: ", false)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				v, err := c.Rotate(cmd.Context(), pw)
				if err != nil {
					return err
				}
				out := struct {
					KeyVersion int64 `json:"key_version"`
				}{v}
				return tool.Print(cmd.OutOrStdout(), out, func(w *tabwriter.Writer) { fmt.Fprintf(w, "key version\t%d\n", v) })
			})
		},
	}
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func mountsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "mounts", Short: "List, create and delete engine mounts",
		Example: "  metacryptctl mounts list\n  metacryptctl mounts create pki --type ca"}
	table := func(list []client.Mount) func(*tabwriter.Writer) {
		return func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "NAME\tTYPE\tCREATED\tID")
			for _, m := range list {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", m.Name, m.Type, m.CreatedAt.Local().Format(time.DateTime), m.ID)
			}
		}
	}
	list := &cobra.Command{Use: "list", Short: "List the mounts", Args: cobra.NoArgs,
		Example: "  metacryptctl mounts list --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				l, err := c.Mounts(cmd.Context())
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, table(l))
			})
		}}
	var typ string
	create := &cobra.Command{Use: "create NAME", Short: "Mount an engine with a new data key (admin)", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl mounts create pki --type ca\n  metacryptctl mounts create ssh --type ssh\n  metacryptctl mounts create transit --type transit\n  metacryptctl mounts create u2u --type u2u",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				m, err := c.CreateMount(cmd.Context(), args[0], typ)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), m, table([]client.Mount{m}))
			})
		}}
	create.Flags().StringVar(&typ, "type", "ca", "engine type: ca, ssh, transit or u2u")
	var yes bool
	del := &cobra.Command{Use: "delete NAME", Short: "Delete a mount and everything in it, keys included (admin)", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl mounts delete lab-pki --yes",
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return errors.New("deleting a mount destroys its keys and certificates for good: pass --yes to confirm")
			}
			return withClient(true, func(c *client.Client) error {
				if err := c.DeleteMount(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "mount %s deleted\n", args[0])
				return nil
			})
		}}
	del.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	cmd.AddCommand(list, create, del)
	return cmd
}
