package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/metacrypt/client"
)

func eabTable(list []client.EAB) func(*tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "KID\tACCOUNT\tSTATUS\tCREATED\tEXPIRES\tCREATED BY\tACME ACCOUNT")
		for _, e := range list {
			expires := "never"
			if !e.ExpiresAt.IsZero() {
				expires = e.ExpiresAt.Format(time.DateTime)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.KID, e.Account, e.Status, e.CreatedAt.Format(time.DateTime),
				expires, e.CreatedBy, joinOr([]string{e.ACMEAccount}, "-"))
		}
	}
}

func acmeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "acme", Short: "Manage the ACME server's External Account Binding credentials",
		Long: `The ACME server (RFC 8555) of each CA issuer is at
https://<metacrypt>/v1/pki/<mount>/acme/<issuer>/directory. Registering an
account there needs External Account Binding (EAB) credentials, made here;
the account then acts as the identity they are bound to, whose ACL rules and
issuance limits apply to every order.`,
		Example: "  metacryptctl acme eab create\n  metacryptctl acme eab create --for mcp-agent --ttl 1h"}
	cmd.AddCommand(eabCmd())
	return cmd
}

func eabCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "eab", Short: "Create, list and revoke EAB credentials",
		Example: "  metacryptctl acme eab create --ttl 24h\n  metacryptctl acme eab list\n  metacryptctl acme eab revoke 8Zq0..."}
	var mount, forAccount, accountType, ttl string
	var roles []string
	create := &cobra.Command{Use: "create", Short: "Make single-use credentials (the HMAC key is shown once)", Args: cobra.NoArgs,
		Long: `Makes single-use EAB credentials bound to you, or with --for (admins only) to
another MCIAS identity such as mcp-agent. Give the key ID and HMAC key to an
ACME client: certbot --eab-kid KID --eab-hmac-key KEY, lego --eab --kid KID
--hmac KEY. The HMAC key is shown only now.`,
		Example: `  metacryptctl acme eab create --ttl 24h
  metacryptctl acme eab create --for mcp-agent --ttl 1h --json`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := parseTTL("ttl", ttl)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				k, err := c.CreateEAB(cmd.Context(), mount, client.EABRequest{Account: forAccount, AccountType: accountType, Roles: roles, TTL: d})
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), k, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "KID\t%s\n", k.KID)
					fmt.Fprintf(w, "HMAC KEY\t%s\n", k.HMACKey)
					fmt.Fprintf(w, "ACCOUNT\t%s\n", k.Account)
					if !k.ExpiresAt.IsZero() {
						fmt.Fprintf(w, "EXPIRES\t%s\n", k.ExpiresAt.Format(time.DateTime))
					}
					fmt.Fprintf(w, "DIRECTORY\thttps://<metacrypt>/v1/pki/%s/acme/<issuer>/directory\n", mount)
				})
			})
		}}
	mountFlag(create, &mount)
	create.Flags().StringVar(&forAccount, "for", "", "bind to this MCIAS account instead of you (admin)")
	create.Flags().StringVar(&accountType, "account-type", "", "with --for: system (default) or human")
	create.Flags().StringSliceVar(&roles, "role", nil, "with --for: a role of that identity (repeatable)")
	create.Flags().StringVar(&ttl, "ttl", "", "usable for this long (90d, 24h); default: no expiry")
	var listMount, listAccount string
	list := &cobra.Command{Use: "list", Short: "List credentials (yours; everyone's for admins)", Args: cobra.NoArgs,
		Example: "  metacryptctl acme eab list\n  metacryptctl acme eab list --account mcp-agent --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				l, err := c.EABs(cmd.Context(), listMount, listAccount)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, eabTable(l))
			})
		}}
	mountFlag(list, &listMount)
	list.Flags().StringVar(&listAccount, "account", "", "only credentials bound to this account (admin)")
	var revokeMount string
	revoke := &cobra.Command{Use: "revoke KID", Short: "Revoke credentials; a used one's ACME account is deactivated", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl acme eab revoke 8Zq0...",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				e, err := c.RevokeEAB(cmd.Context(), revokeMount, args[0])
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), e, eabTable([]client.EAB{e}))
			})
		}}
	mountFlag(revoke, &revokeMount)
	cmd.AddCommand(create, list, revoke)
	return cmd
}
