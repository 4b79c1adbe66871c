package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
	"git.metacircular.net/metacircular/metacrypt/client"
)

func sshCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ssh", Short: "The SSH CA: its key, signing profiles, certificates, revocation and KRL",
		Long: `An "ssh" mount holds one SSH CA key (made with "ssh ca generate") that signs
OpenSSH user and host certificates under named signing profiles. sshd trusts
it with TrustedUserCAKeys and reads revocations from the KRL (RevokedKeys);
both are served without a token, also while Metacrypt is sealed:

  https://<metacrypt>/v1/ssh/<mount>/ca    the CA key, authorized_keys form
  https://<metacrypt>/v1/ssh/<mount>/krl   the binary KRL

Commands work on the mount given by --mount (default "ssh").`,
		Example: `  metacryptctl ssh ca generate
  metacryptctl ssh profiles create users --cert-type user --allowed-principals '{{username}}' --default-principals '{{username}}'
  metacryptctl ssh sign --profile users --public-key ~/.ssh/id_ed25519.pub --out ~/.ssh/id_ed25519-cert.pub
  metacryptctl ssh revoke --serial 7`}
	cmd.AddCommand(sshCACmd(), sshProfilesCmd(), sshSignCmd(), sshCertsCmd(), sshRevokeCmd(), sshKRLCmd())
	return cmd
}

// sshMountFlag adds --mount to an SSH command.
func sshMountFlag(cmd *cobra.Command, mount *string) {
	cmd.Flags().StringVar(mount, "mount", "ssh", "SSH CA mount")
}

// readAllStdin reads the rest of standard input.
func readAllStdin() ([]byte, error) { return io.ReadAll(stdinLines()) }

// readInput reads a file, or standard input for "-" or "".
func readInput(path string) ([]byte, error) {
	if path == "" || path == "-" {
		b, err := readAllStdin()
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(path) //nolint:gosec // the operator's file
	if err != nil {
		return nil, err
	}
	return b, nil
}

func sshCATable(ca client.SSHCA) func(*tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "key type\t%s\nfingerprint\t%s\ncreated\t%s\npublic key\t%s\n", ca.KeyType, ca.Fingerprint,
			ca.CreatedAt.Local().Format(time.DateTime), strings.TrimSpace(ca.PublicKey))
	}
}

func sshCACmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ca", Short: "Generate or show the mount's CA key",
		Example: "  metacryptctl ssh ca generate --key-type ed25519\n  metacryptctl ssh ca show --out /etc/ssh/metacrypt_user_ca.pub"}
	var mount, keyType string
	gen := &cobra.Command{Use: "generate", Short: "Generate the mount's CA key (manage on ca); a mount has one", Args: cobra.NoArgs,
		Example: "  metacryptctl ssh ca generate\n  metacryptctl ssh ca generate --mount ssh-hosts --key-type ec-p256",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				ca, err := c.GenerateSSHCA(cmd.Context(), mount, keyType)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), ca, sshCATable(ca))
			})
		}}
	sshMountFlag(gen, &mount)
	gen.Flags().StringVar(&keyType, "key-type", "", "ed25519 (default), ec-p256, ec-p384, rsa-3072, rsa-4096")
	var out string
	show := &cobra.Command{Use: "show", Short: "Print the CA public key (authorized_keys form) for TrustedUserCAKeys or @cert-authority",
		Long: `show prints the CA key as one authorized_keys line: the content of sshd's
TrustedUserCAKeys file, or the key part of a known_hosts line
"@cert-authority *.example.net <key>". With --json, the key's description.`,
		Example: `  metacryptctl ssh ca show > /etc/ssh/metacrypt_user_ca.pub
  metacryptctl ssh ca show --out /etc/ssh/metacrypt_user_ca.pub
  metacryptctl ssh ca show --json`, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				ca, err := c.SSHCA(cmd.Context(), mount)
				if err != nil {
					return err
				}
				if out != "" {
					if err := atomicfile.Write(out, []byte(ca.PublicKey), 0o644); err != nil {
						return err
					}
				}
				if tool.JSON || out != "" {
					return tool.Print(cmd.OutOrStdout(), ca, sshCATable(ca))
				}
				fmt.Fprint(cmd.OutOrStdout(), ca.PublicKey)
				return nil
			})
		}}
	sshMountFlag(show, &mount)
	show.Flags().StringVar(&out, "out", "", "also write the authorized_keys line to this file")
	cmd.AddCommand(gen, show)
	return cmd
}

func sshProfileTable(list []client.SSHProfile) func(*tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "NAME\tTYPE\tALLOWED PRINCIPALS\tDEFAULT PRINCIPALS\tMAX TTL\tDEFAULT TTL\tEXTENSIONS\tCRITICAL OPTIONS")
		for _, p := range list {
			var opts []string
			for k, v := range p.CriticalOptions {
				opts = append(opts, k+"="+v)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.CertType, joinOr(p.AllowedPrincipals, "-"),
				joinOr(p.DefaultPrincipals, "-"), p.MaxTTL, p.DefaultTTL, joinOr(p.DefaultExtensions, "-"), joinOr(opts, "-"))
		}
	}
}

// profileFlags are a signing profile's settings as flags.
type profileFlags struct {
	r                  client.SSHProfileRequest
	maxTTL, defaultTTL string
	options            []string
}

func (p *profileFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&p.r.CertType, "cert-type", "", "user or host (required)")
	f.StringSliceVar(&p.r.AllowedPrincipals, "allowed-principals", nil, "principal patterns a request may name: * any run of characters, {{username}} the requester's MCIAS name (required)")
	f.StringSliceVar(&p.r.DefaultPrincipals, "default-principals", nil, "principals signed when a request names none ({{username}} allowed, no *)")
	f.StringVar(&p.maxTTL, "max-ttl", "", "longest validity (default user 24h, host 90d)")
	f.StringVar(&p.defaultTTL, "default-ttl", "", "validity when a request sets none (default user 1h, host 30d)")
	f.StringSliceVar(&p.r.AllowedExtensions, "allowed-extensions", nil, "extensions a request may ask for (default: the default extensions)")
	f.StringSliceVar(&p.r.DefaultExtensions, "default-extensions", nil, "extensions signed when a request names none (permit-pty, permit-port-forwarding, ...)")
	f.StringArrayVar(&p.options, "critical-option", nil, "NAME=VALUE put in every certificate: force-command=CMD, source-address=CIDR[,CIDR] (repeatable)")
	f.StringSliceVar(&p.r.AllowedCriticalOptions, "allowed-critical-options", nil, "critical options a request may set: force-command, source-address")
	f.StringSliceVar(&p.r.KeyTypes, "key-types", nil, "OpenSSH key types allowed (default all: ssh-ed25519, ecdsa-sha2-nistp256, ..., ssh-rsa, sk-*)")
	f.IntVar(&p.r.MinRSABits, "min-rsa-bits", 0, "smallest RSA key (default and minimum 2048)")
	_ = cmd.MarkFlagRequired("cert-type")
	_ = cmd.MarkFlagRequired("allowed-principals")
}

func (p *profileFlags) request(name string) (client.SSHProfileRequest, error) {
	r := p.r
	r.Name = name
	var err error
	if r.MaxTTL, err = parseTTL("max-ttl", p.maxTTL); err != nil {
		return r, err
	}
	if r.DefaultTTL, err = parseTTL("default-ttl", p.defaultTTL); err != nil {
		return r, err
	}
	r.CriticalOptions, err = parseOptions("critical-option", p.options)
	return r, err
}

// parseOptions reads NAME=VALUE flags into a map.
func parseOptions(flag string, in []string) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, o := range in {
		k, v, ok := strings.Cut(o, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want NAME=VALUE (force-command=/usr/bin/rsync, source-address=10.0.0.0/8)", flag, o)
		}
		out[k] = v
	}
	return out, nil
}

func sshProfilesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "profiles", Short: "List, show, create, update and delete signing profiles",
		Example: "  metacryptctl ssh profiles list\n  metacryptctl ssh profiles create users --cert-type user --allowed-principals '{{username}}' --default-principals '{{username}}'"}
	var mount string
	list := &cobra.Command{Use: "list", Short: "List the signing profiles (read on profiles)", Args: cobra.NoArgs,
		Example: "  metacryptctl ssh profiles list\n  metacryptctl ssh profiles list --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				l, err := c.SSHProfiles(cmd.Context(), mount)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, sshProfileTable(l))
			})
		}}
	sshMountFlag(list, &mount)
	show := &cobra.Command{Use: "show NAME", Short: "Show one profile (read on profile/NAME)", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl ssh profiles show users --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				p, err := c.SSHProfile(cmd.Context(), mount, args[0])
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), p, func(w *tabwriter.Writer) {
					sshProfileTable([]client.SSHProfile{p})(w)
					fmt.Fprintf(w, "\nallowed extensions: %s\nallowed critical options: %s\nkey types: %s\nmin RSA bits: %d\n",
						joinOr(p.AllowedExtensions, "-"), joinOr(p.AllowedCriticalOptions, "-"), joinOr(p.KeyTypes, "-"), p.MinRSABits)
				})
			})
		}}
	sshMountFlag(show, &mount)
	var cf, uf profileFlags
	put := func(update bool, pf *profileFlags) func(cmd *cobra.Command, args []string) error {
		return func(cmd *cobra.Command, args []string) error {
			r, err := pf.request(args[0])
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				put := c.CreateSSHProfile
				if update {
					put = c.UpdateSSHProfile
				}
				p, err := put(cmd.Context(), mount, r)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), p, sshProfileTable([]client.SSHProfile{p}))
			})
		}
	}
	create := &cobra.Command{Use: "create NAME", Short: "Create a signing profile (manage on profile/NAME)", Args: cobra.ExactArgs(1),
		Long: `create adds a signing profile. Principal patterns: "*" stands for any run of
characters and {{username}} for the requester's MCIAS username, so
--allowed-principals '{{username}}' lets every user have only their own name.`,
		Example: `  metacryptctl ssh profiles create users --cert-type user --allowed-principals '{{username}}' --default-principals '{{username}}' \
      --max-ttl 8h --default-extensions permit-pty,permit-agent-forwarding
  metacryptctl ssh profiles create backup --cert-type user --allowed-principals backup \
      --critical-option force-command=/usr/bin/rrsync --critical-option source-address=10.0.0.0/8
  metacryptctl ssh profiles create hosts --cert-type host --allowed-principals '*.svc.mcp.metacircular.net'`,
		RunE: put(false, &cf)}
	sshMountFlag(create, &mount)
	cf.add(create)
	update := &cobra.Command{Use: "update NAME", Short: "Replace a profile's settings as a whole (manage on profile/NAME)", Args: cobra.ExactArgs(1),
		Long: `update replaces every setting of the profile with the flags given (unset
flags take the defaults, as at creation); certificates already signed keep
theirs.`,
		Example: "  metacryptctl ssh profiles update users --cert-type user --allowed-principals '{{username}}' --max-ttl 4h",
		RunE:    put(true, &uf)}
	sshMountFlag(update, &mount)
	uf.add(update)
	del := &cobra.Command{Use: "delete NAME", Short: "Delete a profile; its certificates keep their records (manage on profile/NAME)", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl ssh profiles delete backup",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				if err := c.DeleteSSHProfile(cmd.Context(), mount, args[0]); err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), map[string]string{"deleted": args[0]}, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "profile %s deleted\n", args[0])
				})
			})
		}}
	sshMountFlag(del, &mount)
	cmd.AddCommand(list, show, create, update, del)
	return cmd
}

func sshCertTable(list []client.SSHCertificate) func(*tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "SERIAL\tTYPE\tPROFILE\tPRINCIPALS\tVALID BEFORE\tSTATUS\tKEY\tREQUESTED BY")
		now := time.Now()
		for _, c := range list {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Serial, c.CertType, c.Profile, joinOr(c.Principals, "-"),
				c.ValidBefore.Local().Format(time.DateTime), c.Status(now), c.KeyFingerprint, c.RequestedBy)
		}
	}
}

func sshSignCmd() *cobra.Command {
	var mount, keyFile, ttl, out string
	var host bool
	var options []string
	var r client.SSHSignRequest
	cmd := &cobra.Command{
		Use:   "sign",
		Short: "Sign an OpenSSH certificate for a public key under a profile",
		Long: `sign asks for a certificate of the public key (a .pub file, or - for standard
input) under a signing profile. Principals, TTL, extensions and critical
options default to the profile's and must fit it: with a {{username}}
profile you get only your own name. The key ID is your MCIAS username.

The certificate is written to --out (ssh picks up <key>-cert.pub beside
the private key) or printed. --host signs a host certificate, as ssh-keygen
-h; the profile must be a host profile (and without --host a user one).`,
		Example: `  metacryptctl ssh sign --profile users --public-key ~/.ssh/id_ed25519.pub --out ~/.ssh/id_ed25519-cert.pub
  metacryptctl ssh sign --profile users --public-key id.pub --principals alice --ttl 30m --out id-cert.pub
  metacryptctl ssh sign --profile hosts --host --public-key /etc/ssh/ssh_host_ed25519_key.pub \
      --principals web1.svc.mcp.metacircular.net --out /etc/ssh/ssh_host_ed25519_key-cert.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, err := readInput(keyFile)
			if err != nil {
				return err
			}
			r.PublicKey = string(pub)
			if r.TTL, err = parseTTL("ttl", ttl); err != nil {
				return err
			}
			if r.CriticalOptions, err = parseOptions("critical-option", options); err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				s, err := c.SignSSH(cmd.Context(), mount, r)
				if err != nil {
					return err
				}
				want := "user"
				if host {
					want = "host"
				}
				if s.Record.CertType != want {
					return fmt.Errorf("profile %s signs %s certificates, not %s ones (certificate %d was signed but not written; drop or add --host)",
						r.Profile, s.Record.CertType, want, s.Record.Serial)
				}
				if out != "" {
					if err := atomicfile.Write(out, []byte(s.Certificate+"\n"), 0o644); err != nil {
						return err
					}
				}
				if tool.JSON || out != "" {
					return tool.Print(cmd.OutOrStdout(), s, sshCertTable([]client.SSHCertificate{s.Record}))
				}
				fmt.Fprintln(cmd.OutOrStdout(), s.Certificate)
				return nil
			})
		},
	}
	sshMountFlag(cmd, &mount)
	f := cmd.Flags()
	f.StringVar(&r.Profile, "profile", "", "signing profile (required)")
	f.StringVar(&keyFile, "public-key", "", "OpenSSH public key file, - for standard input (required)")
	f.StringSliceVar(&r.Principals, "principals", nil, "user or host names to certify (default: the profile's)")
	f.StringVar(&ttl, "ttl", "", "validity (default: the profile's)")
	f.StringSliceVar(&r.Extensions, "extensions", nil, "extensions (default: the profile's)")
	f.StringArrayVar(&options, "critical-option", nil, "NAME=VALUE the profile allows: force-command=CMD, source-address=CIDR (repeatable)")
	f.BoolVar(&host, "host", false, "sign a host certificate (the profile must be a host profile)")
	f.StringVar(&out, "out", "", "write the certificate here (the -cert.pub file) instead of printing it")
	_ = cmd.MarkFlagRequired("profile")
	_ = cmd.MarkFlagRequired("public-key")
	return cmd
}

func sshCertsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "certs", Short: "List and show signed certificates",
		Example: "  metacryptctl ssh certs list --requested-by alice\n  metacryptctl ssh certs show 7"}
	var mount string
	var f client.SSHFilter
	list := &cobra.Command{Use: "list", Short: "Search the certificate records, newest first (read on certs)", Args: cobra.NoArgs,
		Example: `  metacryptctl ssh certs list
  metacryptctl ssh certs list --principal alice --status valid
  metacryptctl ssh certs list --profile users --json`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				l, err := c.SSHCertificates(cmd.Context(), mount, f)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, sshCertTable(l))
			})
		}}
	sshMountFlag(list, &mount)
	list.Flags().StringVar(&f.Profile, "profile", "", "only certificates of this profile")
	list.Flags().StringVar(&f.Principal, "principal", "", "only certificates naming this principal")
	list.Flags().StringVar(&f.RequestedBy, "requested-by", "", "only certificates this account asked for")
	list.Flags().StringVar(&f.Status, "status", "", "valid, revoked or expired")
	list.Flags().IntVar(&f.Limit, "limit", 0, "at most this many (default 100, at most 1000)")
	var out string
	show := &cobra.Command{Use: "show SERIAL", Short: "Show one certificate's record and its -cert.pub line", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl ssh certs show 7\n  metacryptctl ssh certs show 7 --out id-cert.pub",
		RunE: func(cmd *cobra.Command, args []string) error {
			serial, err := parseSerial(args[0])
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				cert, err := c.SSHCertificate(cmd.Context(), mount, serial)
				if err != nil {
					return err
				}
				if out != "" {
					if err := atomicfile.Write(out, []byte(cert.Certificate+"\n"), 0o644); err != nil {
						return err
					}
				}
				return tool.Print(cmd.OutOrStdout(), cert, func(w *tabwriter.Writer) {
					sshCertTable([]client.SSHCertificate{cert})(w)
					var opts []string
					for k, v := range cert.CriticalOptions {
						opts = append(opts, k+"="+v)
					}
					fmt.Fprintf(w, "\nkey ID: %s\nvalid after: %s\nextensions: %s\ncritical options: %s\n\n%s\n", cert.KeyID,
						cert.ValidAfter.Local().Format(time.DateTime), joinOr(cert.Extensions, "-"), joinOr(opts, "-"), cert.Certificate)
				})
			})
		}}
	sshMountFlag(show, &mount)
	show.Flags().StringVar(&out, "out", "", "also write the certificate (-cert.pub line) to this file")
	cmd.AddCommand(list, show)
	return cmd
}

// parseSerial reads an SSH certificate serial (decimal, from 1).
func parseSerial(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not an SSH certificate serial (decimal, from 1, as ssh-keygen -L prints it)", s)
	}
	return n, nil
}

func sshRevokeCmd() *cobra.Command {
	var mount, serial, keyFile string
	var r client.SSHRevokeRequest
	cmd := &cobra.Command{
		Use:   "revoke",
		Short: "Revoke a certificate, a key, a fingerprint or a key ID; the KRL is rebuilt at once",
		Long: `revoke takes exactly one of --serial (one certificate: revoke on its profile,
and its principals must be yours under it), --public-key (the key and every
certificate of it), --fingerprint (the same by SHA256 fingerprint) or --key-id
(every certificate a user obtained); the last three need revoke on "krl".
Hosts refuse the certificate once they have fetched the new KRL.`,
		Example: `  metacryptctl ssh revoke --serial 7
  metacryptctl ssh revoke --public-key stolen_id_ed25519.pub
  metacryptctl ssh revoke --fingerprint SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s
  metacryptctl ssh revoke --key-id mallory`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			set := 0
			for _, v := range []string{serial, keyFile, r.Fingerprint, r.KeyID} {
				if v != "" {
					set++
				}
			}
			if set != 1 {
				return errors.New("give exactly one of --serial, --public-key, --fingerprint and --key-id")
			}
			var err error
			if serial != "" {
				if r.Serial, err = parseSerial(serial); err != nil {
					return err
				}
			}
			if keyFile != "" {
				pub, err := readInput(keyFile)
				if err != nil {
					return err
				}
				r.PublicKey = string(pub)
			}
			return withClient(true, func(c *client.Client) error {
				rev, err := c.RevokeSSH(cmd.Context(), mount, r)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), rev, func(w *tabwriter.Writer) {
					serials := make([]string, len(rev.Serials))
					for i, s := range rev.Serials {
						serials[i] = strconv.FormatUint(s, 10)
					}
					fmt.Fprintf(w, "KRL version\t%d\ncertificates revoked\t%s\n", rev.KRLVersion, joinOr(serials, "none recorded"))
				})
			})
		},
	}
	sshMountFlag(cmd, &mount)
	cmd.Flags().StringVar(&serial, "serial", "", "certificate serial (decimal)")
	cmd.Flags().StringVar(&keyFile, "public-key", "", "OpenSSH public key file (- for standard input)")
	cmd.Flags().StringVar(&r.Fingerprint, "fingerprint", "", "key fingerprint, SHA256:... as ssh-keygen -l prints it")
	cmd.Flags().StringVar(&r.KeyID, "key-id", "", "key ID (the requester's username)")
	return cmd
}

func sshKRLCmd() *cobra.Command {
	var mount, out string
	cmd := &cobra.Command{
		Use:   "krl",
		Short: "Fetch the mount's KRL (OpenSSH binary format) for sshd's RevokedKeys",
		Long: `krl writes the current KRL to --out, for sshd's RevokedKeys or ssh-keygen -Q.
Hosts usually fetch it without a token from https://<metacrypt>/v1/ssh/<mount>/krl
on a timer instead (RUNBOOK.md).`,
		Example: `  metacryptctl ssh krl --out /etc/ssh/revoked.krl
  ssh-keygen -Q -f /etc/ssh/revoked.krl ~/.ssh/id_ed25519-cert.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				k, err := c.SSHKRL(cmd.Context(), mount)
				if err != nil {
					return err
				}
				if err := atomicfile.Write(out, k.KRL, 0o644); err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), k, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "KRL version\t%d\ngenerated\t%s\nbytes\t%d\nwritten to\t%s\n", k.Version,
						k.GeneratedAt.Local().Format(time.DateTime), len(k.KRL), out)
				})
			})
		},
	}
	sshMountFlag(cmd, &mount)
	cmd.Flags().StringVar(&out, "out", "", "file to write the KRL to (required)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
