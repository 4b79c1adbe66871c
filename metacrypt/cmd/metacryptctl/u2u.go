package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
	"git.metacircular.net/metacircular/metacrypt/client"
)

func u2uCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "u2u", Short: "User-to-user messages: only the recipient opens them, and learns who sent them",
		Long: `A "u2u" mount gives every MCIAS user an X25519 key pair inside Metacrypt
(made on the first send, or with "u2u keys create"). "u2u send" seals a
message to another user; only that user can open it with "u2u open", which
tells who sent it. Messages are printed as one line of base64 (--out writes
it to a file); "u2u open" reads that (or the raw bytes) from --in or
standard input.

Commands work on the mount given by --mount (default "u2u").`,
		Example: `  echo 'the door code is 4711' | metacryptctl u2u send --to bob > msg.txt
  metacryptctl u2u open --in msg.txt`}
	cmd.AddCommand(u2uKeysCmd(), u2uSendCmd(), u2uOpenCmd())
	return cmd
}

func u2uMountFlag(cmd *cobra.Command, mount *string) {
	cmd.Flags().StringVar(mount, "mount", "u2u", "u2u mount")
}

func u2uKeyTable(list []client.U2UKeys) func(*tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "USER\tVERSION\tCREATED\tPUBLIC KEY")
		for _, k := range list {
			for _, v := range k.Versions {
				latest := ""
				if v.Version == k.LatestVersion {
					latest = " (latest)"
				}
				fmt.Fprintf(w, "%s\t%d%s\t%s\t%s\n", k.Username, v.Version, latest, v.CreatedAt.Local().Format(time.DateTime),
					base64.StdEncoding.EncodeToString(v.PublicKey))
			}
		}
	}
}

func u2uKeysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Create, rotate, show and list user key pairs (public keys only)",
		Example: "  metacryptctl u2u keys create\n  metacryptctl u2u keys show bob\n  metacryptctl u2u keys list"}
	var mount string
	own := func(use, short, example string, call func(c *client.Client, cmd *cobra.Command) (client.U2UKeys, error)) *cobra.Command {
		sub := &cobra.Command{Use: use, Short: short, Example: example, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return withClient(true, func(c *client.Client) error {
					k, err := call(c, cmd)
					if err != nil {
						return err
					}
					return tool.Print(cmd.OutOrStdout(), k, u2uKeyTable([]client.U2UKeys{k}))
				})
			}}
		u2uMountFlag(sub, &mount)
		return sub
	}
	create := own("create", "Create your key pair (manage on user/<you>)", "  metacryptctl u2u keys create",
		func(c *client.Client, cmd *cobra.Command) (client.U2UKeys, error) {
			return c.CreateU2UKey(cmd.Context(), mount)
		})
	rotate := own("rotate", "Add a version to your key pair; messages to older versions still open", "  metacryptctl u2u keys rotate",
		func(c *client.Client, cmd *cobra.Command) (client.U2UKeys, error) {
			return c.RotateU2UKey(cmd.Context(), mount)
		})
	show := &cobra.Command{Use: "show USER", Short: "Show a user's public keys (read on user/USER)", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl u2u keys show bob\n  metacryptctl u2u keys show bob --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				k, err := c.U2UKey(cmd.Context(), mount, args[0])
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), k, u2uKeyTable([]client.U2UKeys{k}))
			})
		}}
	u2uMountFlag(show, &mount)
	list := &cobra.Command{Use: "list", Short: "List every user's public keys (read on users)", Args: cobra.NoArgs,
		Example: "  metacryptctl u2u keys list --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				l, err := c.U2UKeys(cmd.Context(), mount)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, u2uKeyTable(l))
			})
		}}
	u2uMountFlag(list, &mount)
	cmd.AddCommand(create, rotate, show, list)
	return cmd
}

func u2uSendCmd() *cobra.Command {
	var mount, to, in, aad, out string
	cmd := &cobra.Command{
		Use:   "send --to USER",
		Short: "Seal a message from --in or standard input to USER (send on user/USER); prints it as base64",
		Example: `  echo 'the door code is 4711' | metacryptctl u2u send --to bob > msg.txt
  metacryptctl u2u send --to bob --in contract.pdf --out contract.pdf.u2u
  metacryptctl u2u send --to bob --in note.txt --associated-data ticket-1234 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pt, err := readInput(in)
			if err != nil {
				return err
			}
			defer clear(pt)
			return withClient(true, func(c *client.Client) error {
				s, err := c.Send(cmd.Context(), mount, to, pt, optionalBytes(aad))
				if err != nil {
					return err
				}
				line := base64.StdEncoding.EncodeToString(s.Message)
				if out != "" {
					if err := atomicfile.Write(out, []byte(line+"\n"), 0o644); err != nil {
						return err
					}
				}
				if tool.JSON {
					return tool.Print(cmd.OutOrStdout(), s, nil)
				}
				if out != "" {
					return tool.Print(cmd.OutOrStdout(), s, func(w *tabwriter.Writer) {
						fmt.Fprintf(w, "to\t%s (key v%d)\nfrom key\tv%d\nsent\t%s\nwritten to\t%s\n", to, s.RecipientKeyVersion,
							s.SenderKeyVersion, s.SentAt.Local().Format(time.DateTime), out)
					})
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), line)
				return err
			})
		},
	}
	u2uMountFlag(cmd, &mount)
	cmd.Flags().StringVar(&to, "to", "", "recipient's MCIAS username (required)")
	cmd.Flags().StringVar(&in, "in", "", "message file, at most 1 MiB (default and -: standard input)")
	cmd.Flags().StringVar(&aad, "associated-data", "", "associated data (text) the recipient must give to open it; not carried in the message")
	cmd.Flags().StringVar(&out, "out", "", "write the sealed message (base64) to this file instead of printing it")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

// decodeMessage reads a sealed message as written by send (base64 text)
// or as raw bytes (version 1 starts with byte 1, never base64 text).
func decodeMessage(b []byte) ([]byte, error) {
	if len(b) > 0 && b[0] == 1 {
		return b, nil
	}
	s := strings.Join(strings.Fields(string(b)), "")
	if s == "" {
		return nil, errors.New("no message: give it with --in or on standard input")
	}
	m, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("the message is neither base64 (as u2u send prints it) nor a raw message: %w", err)
	}
	return m, nil
}

func u2uOpenCmd() *cobra.Command {
	var mount, in, aad, out string
	cmd := &cobra.Command{
		Use:   "open",
		Short: "Open a message sent to you (open on user/<you>); writes the plaintext, and the sender to standard error",
		Long: `open reads a sealed message (base64 as "u2u send" prints it, or raw) from --in
or standard input, opens it with your key and writes the plaintext to standard
output or --out; who sent it (their MCIAS username, as proven by their key)
goes to standard error, or into the table with --out, or the JSON.`,
		Example: `  metacryptctl u2u open --in msg.txt
  metacryptctl u2u open --in contract.pdf.u2u --out contract.pdf
  metacryptctl u2u open --in note.u2u --associated-data ticket-1234 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			raw, err := readInput(in)
			if err != nil {
				return err
			}
			msg, err := decodeMessage(raw)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				o, err := c.Open(cmd.Context(), mount, msg, optionalBytes(aad))
				if err != nil {
					return err
				}
				defer clear(o.Plaintext)
				if tool.JSON {
					return tool.Print(cmd.OutOrStdout(), o, nil)
				}
				from := fmt.Sprintf("from %s (key v%d), sent %s", o.Sender, o.SenderKeyVersion, o.SentAt.Local().Format(time.DateTime))
				if out != "" {
					if err := atomicfile.Write(out, o.Plaintext, 0o600); err != nil {
						return err
					}
					return tool.Print(cmd.OutOrStdout(), o, func(w *tabwriter.Writer) {
						fmt.Fprintf(w, "%s\nwritten to\t%s\n", from, out)
					})
				}
				fmt.Fprintln(cmd.ErrOrStderr(), from)
				_, err = cmd.OutOrStdout().Write(o.Plaintext)
				return err
			})
		},
	}
	u2uMountFlag(cmd, &mount)
	cmd.Flags().StringVar(&in, "in", "", "message file (default and -: standard input)")
	cmd.Flags().StringVar(&aad, "associated-data", "", "the associated data (text) the message was sent with")
	cmd.Flags().StringVar(&out, "out", "", "write the plaintext to this file (mode 0600) instead of standard output")
	return cmd
}
