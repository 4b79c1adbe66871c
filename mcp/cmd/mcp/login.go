package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
	"git.metacircular.net/metacircular/mcdsl/cli"
	"git.metacircular.net/metacircular/mcdsl/terminal"
	mciasclient "git.metacircular.net/metacircular/mcias/client"
)

func (a *app) loginCmd() *cobra.Command {
	var username, totp string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in through MCIAS and save the token ([auth] token_path, mode 0600)",
		Long: `login asks for your password (never echoed; --password-stdin reads it from
standard input), logs in at MCIAS ([mcias] address, as service [mcias]
service_name, default mcp) and saves the token to [auth] token_path with
mode 0600. Every other command sends it to the agents.`,
		Example: "  mcp login -u alice\n  printf '%s\\n' \"$PW\" | mcp login -u ci --password-stdin",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if cfg.MCIAS.Address == "" {
				return fmt.Errorf("no [mcias] address in %s", cfg.Path)
			}
			if username == "" {
				return fmt.Errorf("--username is required")
			}
			var pw string
			if passwordStdin {
				line, err := bufio.NewReader(os.Stdin).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("read password: %w", err)
				}
				pw = strings.TrimRight(line, "\r\n")
			} else if pw, err = terminal.ReadPassword("Password: "); err != nil {
				return err
			}
			req := cli.LoginRequest{Username: username, Password: pw, TOTPCode: totp, ServiceName: cfg.MCIAS.ServiceName}
			tok, exp, err := mciasclient.CLILogin(cmd.Context(), cfg.MCIAS.Address, cfg.MCIAS.CACert, req)
			if err != nil && strings.Contains(strings.ToLower(err.Error()), "totp") && totp == "" && !passwordStdin {
				if req.TOTPCode, err = terminal.ReadPassword("TOTP code: "); err != nil {
					return err
				}
				tok, exp, err = mciasclient.CLILogin(cmd.Context(), cfg.MCIAS.Address, cfg.MCIAS.CACert, req)
			}
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(cfg.Auth.TokenPath), 0o700); err != nil {
				return err
			}
			if err := atomicfile.Write(cfg.Auth.TokenPath, []byte(tok+"\n"), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in as %s until %s; token saved in %s\n", username, exp.Local().Format("2006-01-02 15:04"), cfg.Auth.TokenPath)
			return nil
		},
	}
	cmd.Flags().StringVarP(&username, "username", "u", "", "MCIAS account")
	cmd.Flags().StringVar(&totp, "totp", "", "TOTP code (asked for when needed)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}
