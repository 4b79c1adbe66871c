package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
	"git.metacircular.net/metacircular/metacrypt/client"
)

// parseTTL reads a duration with a day unit added ("90d", "720h").
func parseTTL(flag, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var total time.Duration
	rest := s
	if i := strings.Index(rest, "d"); i > 0 {
		var days int
		if _, err := fmt.Sscanf(rest[:i], "%d", &days); err != nil || days < 0 {
			return 0, fmt.Errorf("--%s %q: want a duration like 90d or 720h", flag, s)
		}
		total, rest = time.Duration(days)*24*time.Hour, rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("--%s %q: want a duration like 90d or 720h", flag, s)
		}
		total += d
	}
	return total, nil
}

func issuerTable(list []client.Issuer) func(*tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "NAME\tKEY\tNOT AFTER\tMAX TTL\tPROFILES\tSUBJECT")
		for _, i := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", i.Name, i.KeyType, i.NotAfter.Format(time.DateOnly),
				joinOr([]string{i.MaxTTL}, "-"), joinOr(i.Profiles, "-"), i.Subject)
		}
	}
}

func rootCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "root", Short: "Generate or import a CA mount's root (admin)",
		Example: "  metacryptctl root generate --key-type ec-p384\n  metacryptctl root import --cert /srv/ca/ca.crt --key /srv/ca/ca.key"}
	var mount, cn, org, keyType, ttl string
	gen := &cobra.Command{Use: "generate", Short: "Generate the mount's root", Args: cobra.NoArgs,
		Example: "  metacryptctl root generate --common-name 'Example Root CA' --key-type ec-p384 --ttl 3650d",
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := parseTTL("ttl", ttl)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				r, err := c.GenerateRoot(cmd.Context(), mount, client.RootRequest{CommonName: cn, Organization: org, KeyType: keyType, TTL: d})
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), r, issuerTable([]client.Issuer{r}))
			})
		}}
	mountFlag(gen, &mount)
	gen.Flags().StringVar(&cn, "common-name", "", "subject common name (default Metacircular Root CA)")
	gen.Flags().StringVar(&org, "organization", "", "subject organization")
	gen.Flags().StringVar(&keyType, "key-type", "", "ec-p256 (default), ec-p384, ed25519, rsa-3072, rsa-4096")
	gen.Flags().StringVar(&ttl, "ttl", "", "lifetime (default 3650d)")
	var certFile, keyFile string
	imp := &cobra.Command{Use: "import", Short: "Import an existing root (the seed root) with its key", Args: cobra.NoArgs,
		Example: "  metacryptctl root import --cert /srv/metacircular/ca/ca.crt --key /srv/metacircular/ca/ca.key",
		RunE: func(cmd *cobra.Command, _ []string) error {
			certPEM, err := os.ReadFile(certFile) //nolint:gosec // the operator's file
			if err != nil {
				return err
			}
			keyPEM, err := os.ReadFile(keyFile) //nolint:gosec // the operator's file
			if err != nil {
				return err
			}
			defer clear(keyPEM)
			return withClient(true, func(c *client.Client) error {
				r, err := c.ImportRoot(cmd.Context(), mount, string(certPEM), string(keyPEM))
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), r, issuerTable([]client.Issuer{r}))
			})
		}}
	mountFlag(imp, &mount)
	imp.Flags().StringVar(&certFile, "cert", "", "root certificate PEM file")
	imp.Flags().StringVar(&keyFile, "key", "", "root private key PEM file")
	_ = imp.MarkFlagRequired("cert")
	_ = imp.MarkFlagRequired("key")
	cmd.AddCommand(gen, imp)
	return cmd
}

func issuersCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "issuers", Short: "List, show, create and update intermediate issuers",
		Example: "  metacryptctl issuers list\n  metacryptctl issuers create services --max-ttl 90d --profiles server,client"}
	var mount string
	list := &cobra.Command{Use: "list", Short: "List the root and the issuers", Args: cobra.NoArgs,
		Example: "  metacryptctl issuers list --mount pki --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				l, err := c.Issuers(cmd.Context(), mount)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, issuerTable(l))
			})
		}}
	mountFlag(list, &mount)
	show := &cobra.Command{Use: "show NAME", Short: "Show one issuer (root for the root), with its certificate", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl issuers show services\n  metacryptctl issuers show root --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				i, err := c.Issuer(cmd.Context(), mount, args[0])
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), i, func(w *tabwriter.Writer) {
					issuerTable([]client.Issuer{i})(w)
					fmt.Fprintf(w, "\nkey types: %s\npermitted domains: %s\nexcluded domains: %s\npermitted ranges: %s\n\n%s",
						joinOr(i.KeyTypes, "-"), joinOr(i.PermittedDNSDomains, "-"), joinOr(i.ExcludedDNSDomains, "-"),
						joinOr(i.PermittedIPRanges, "-"), i.CertificatePEM)
				})
			})
		}}
	mountFlag(show, &mount)
	var r client.IssuerRequest
	var ttl, maxTTL, defTTL string
	create := &cobra.Command{Use: "create NAME", Short: "Create an issuer signed by the root (admin)", Args: cobra.ExactArgs(1),
		Example: `  metacryptctl issuers create services --max-ttl 90d --profiles server,client --permitted-dns svc.mcp.metacircular.net
  metacryptctl issuers create clients --profiles client --key-type ec-p384`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			r.Name = args[0]
			if r.TTL, err = parseTTL("ttl", ttl); err != nil {
				return err
			}
			if r.MaxTTL, err = parseTTL("max-ttl", maxTTL); err != nil {
				return err
			}
			if r.DefaultTTL, err = parseTTL("default-ttl", defTTL); err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				i, err := c.CreateIssuer(cmd.Context(), mount, r)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), i, issuerTable([]client.Issuer{i}))
			})
		}}
	mountFlag(create, &mount)
	f := create.Flags()
	f.StringVar(&r.CommonName, "common-name", "", "subject common name (default Metacircular NAME CA)")
	f.StringVar(&r.KeyType, "key-type", "", "the issuer's key: ec-p256 (default), ec-p384, ed25519, rsa-3072, rsa-4096")
	f.StringVar(&ttl, "ttl", "", "the issuer certificate's lifetime (default 1826d, at most the root's)")
	f.StringVar(&maxTTL, "max-ttl", "", "longest leaf lifetime (default 90d)")
	f.StringVar(&defTTL, "default-ttl", "", "leaf lifetime when a request sets none (default 30d)")
	f.StringSliceVar(&r.KeyTypes, "key-types", nil, "leaf key types allowed (default all)")
	f.StringSliceVar(&r.Profiles, "profiles", nil, "leaf profiles allowed: server, client, both (default all)")
	f.StringSliceVar(&r.PermittedDNSDomains, "permitted-dns", nil, "name constraint: permitted DNS domain (repeatable)")
	f.StringSliceVar(&r.ExcludedDNSDomains, "excluded-dns", nil, "name constraint: excluded DNS domain (repeatable)")
	f.StringSliceVar(&r.PermittedIPRanges, "permitted-ip", nil, "name constraint: permitted CIDR (repeatable)")
	f.StringSliceVar(&r.ExcludedIPRanges, "excluded-ip", nil, "name constraint: excluded CIDR (repeatable)")
	var s client.IssuerSettings
	var uMax, uDef string
	update := &cobra.Command{Use: "update NAME", Short: "Change an issuer's TTLs, key types or profiles (admin)", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl issuers update services --max-ttl 30d --key-types ec-p256,ec-p384",
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if s.MaxTTL, err = parseTTL("max-ttl", uMax); err != nil {
				return err
			}
			if s.DefaultTTL, err = parseTTL("default-ttl", uDef); err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				i, err := c.UpdateIssuer(cmd.Context(), mount, args[0], s)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), i, issuerTable([]client.Issuer{i}))
			})
		}}
	mountFlag(update, &mount)
	update.Flags().StringVar(&uMax, "max-ttl", "", "longest leaf lifetime (unset: keep)")
	update.Flags().StringVar(&uDef, "default-ttl", "", "default leaf lifetime (unset: keep)")
	update.Flags().StringSliceVar(&s.KeyTypes, "key-types", nil, "leaf key types allowed (unset: keep)")
	update.Flags().StringSliceVar(&s.Profiles, "profiles", nil, "leaf profiles allowed (unset: keep)")
	cmd.AddCommand(list, show, create, update)
	return cmd
}

func certTable(list []client.Certificate) func(*tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "SERIAL\tISSUER\tNAMES\tNOT AFTER\tSTATUS\tREQUESTED BY")
		for _, c := range list {
			status := "valid"
			switch {
			case c.Revoked:
				status = "revoked (" + c.RevocationReason + ")"
			case !time.Now().Before(c.NotAfter):
				status = "expired"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Serial, c.Issuer, joinOr(append(append([]string{}, c.DNSNames...), c.IPAddresses...), "-"),
				c.NotAfter.Local().Format(time.DateTime), status, c.RequestedBy)
		}
	}
}

// outputFlags are where an issued certificate goes.
type outputFlags struct {
	certFile, keyFile string
}

func (o *outputFlags) add(cmd *cobra.Command, withKey bool) {
	cmd.Flags().StringVar(&o.certFile, "cert-file", "", "write the full chain (leaf, then issuer) here instead of printing it")
	if withKey {
		cmd.Flags().StringVar(&o.keyFile, "key-file", "", "write the private key here (mode 0600) instead of printing it")
	}
}

// emit writes or prints an issued certificate: with --json the whole
// answer; else the files asked for and a table, or the PEM on stdout.
func (o *outputFlags) emit(out io.Writer, is client.Issued) error {
	if tool.JSON {
		return tool.Print(out, is, nil)
	}
	if o.keyFile != "" && is.PrivateKeyPEM != "" {
		if err := atomicfile.Write(o.keyFile, []byte(is.PrivateKeyPEM), 0o600); err != nil {
			return err
		}
	}
	if o.certFile != "" {
		if err := atomicfile.Write(o.certFile, []byte(is.ChainPEM), 0o644); err != nil {
			return err
		}
	}
	if o.certFile == "" {
		fmt.Fprint(out, is.ChainPEM)
	}
	if o.keyFile == "" && is.PrivateKeyPEM != "" {
		fmt.Fprint(out, is.PrivateKeyPEM)
	}
	if o.certFile != "" {
		return tool.Print(out, is, certTable([]client.Certificate{is.Certificate}))
	}
	return nil
}

func issueCmd() *cobra.Command {
	var mount, ttl string
	var r client.IssueRequest
	var o outputFlags
	cmd := &cobra.Command{
		Use:   "issue ISSUER",
		Short: "Issue a certificate with a key generated by Metacrypt",
		Long: `issue asks the issuer for a certificate for the given names; Metacrypt
generates the key and returns it once (it is never stored). Every name must be
within your issuance limits. Without --cert-file/--key-file the chain and the
key are printed.`,
		Example: `  metacryptctl issue services --dns mcq.svc.mcp.metacircular.net --cert-file mcq.crt --key-file mcq.key
  metacryptctl issue services --dns mcq.svc.mcp.metacircular.net --ip 10.0.0.7 --ttl 30d --key-type ec-p384
  metacryptctl issue clients --dns alice.users.mcp.metacircular.net --profile client --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			r.Issuer = args[0]
			if r.TTL, err = parseTTL("ttl", ttl); err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				is, err := c.Issue(cmd.Context(), mount, r)
				if err != nil {
					return err
				}
				return o.emit(cmd.OutOrStdout(), is)
			})
		},
	}
	mountFlag(cmd, &mount)
	cmd.Flags().StringSliceVar(&r.DNSNames, "dns", nil, "DNS name (repeatable)")
	cmd.Flags().StringSliceVar(&r.IPAddresses, "ip", nil, "IP address (repeatable)")
	cmd.Flags().StringVar(&r.CommonName, "common-name", "", "subject common name (default: the first name)")
	cmd.Flags().StringVar(&r.KeyType, "key-type", "", "ec-p256 (default), ec-p384, ed25519, rsa-2048, rsa-3072, rsa-4096")
	cmd.Flags().StringVar(&r.Profile, "profile", "", "server (default), client or both")
	cmd.Flags().StringVar(&ttl, "ttl", "", "lifetime (default: the issuer's)")
	o.add(cmd, true)
	return cmd
}

func signCmd() *cobra.Command {
	var mount, csrFile, ttl, profile string
	var o outputFlags
	cmd := &cobra.Command{
		Use:   "sign ISSUER",
		Short: "Sign a certificate request (CSR)",
		Long: `sign submits a PEM CSR: its signature is checked, its DNS and IP names and
common name must be within your issuance limits, and the certificate carries
only those names and the CSR's key.`,
		Example: `  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k.pem -subj /CN=mcq.svc.mcp.metacircular.net -out req.csr
  metacryptctl sign services --csr req.csr --cert-file mcq.crt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			csr, err := os.ReadFile(csrFile) //nolint:gosec // the operator's file
			if err != nil {
				return err
			}
			d, err := parseTTL("ttl", ttl)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				is, err := c.SignCSR(cmd.Context(), mount, args[0], string(csr), d, profile)
				if err != nil {
					return err
				}
				return o.emit(cmd.OutOrStdout(), is)
			})
		},
	}
	mountFlag(cmd, &mount)
	cmd.Flags().StringVar(&csrFile, "csr", "", "PEM certificate request file")
	cmd.Flags().StringVar(&ttl, "ttl", "", "lifetime (default: the issuer's)")
	cmd.Flags().StringVar(&profile, "profile", "", "server (default), client or both")
	_ = cmd.MarkFlagRequired("csr")
	o.add(cmd, false)
	return cmd
}

func renewCmd() *cobra.Command {
	var mount, ttl string
	var o outputFlags
	cmd := &cobra.Command{
		Use:   "renew SERIAL",
		Short: "Renew a certificate: same key and names, new validity",
		Long: `renew issues a new certificate for the key, names, profile and issuer of an
existing unrevoked one; the names must still be within your limits. Keep using
the private key you have.`,
		Example: "  metacryptctl renew 3f1a9c0d... --cert-file mcq.crt\n  metacryptctl renew 3F:1A:9C:0D... --ttl 30d --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseTTL("ttl", ttl)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				is, err := c.Renew(cmd.Context(), mount, args[0], d)
				if err != nil {
					return err
				}
				return o.emit(cmd.OutOrStdout(), is)
			})
		},
	}
	mountFlag(cmd, &mount)
	cmd.Flags().StringVar(&ttl, "ttl", "", "lifetime (default: the issuer's)")
	o.add(cmd, false)
	return cmd
}

func revokeCmd() *cobra.Command {
	var mount, reason string
	cmd := &cobra.Command{
		Use:   "revoke SERIAL",
		Short: "Revoke a certificate; its issuer's CRL is rebuilt at once",
		Example: `  metacryptctl revoke 3f1a9c0d... --reason key-compromise
  metacryptctl revoke 3f1a9c0d... --reason superseded`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				cert, err := c.Revoke(cmd.Context(), mount, args[0], reason)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), cert, certTable([]client.Certificate{cert}))
			})
		},
	}
	mountFlag(cmd, &mount)
	cmd.Flags().StringVar(&reason, "reason", "", "unspecified (default), key-compromise, affiliation-changed, superseded, cessation-of-operation, privilege-withdrawn")
	return cmd
}

func listCmd() *cobra.Command {
	var mount, expiring string
	var f client.Filter
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List and search issued certificates, soonest expiry first",
		Example: `  metacryptctl list
  metacryptctl list --expiring 30d
  metacryptctl list --name mcq.svc.mcp.metacircular.net --status revoked --json
  metacryptctl list --issuer services --requested-by mcp-agent`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if f.ExpiringWithin, err = parseTTL("expiring", expiring); err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				l, err := c.Certificates(cmd.Context(), mount, f)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), l, certTable(l))
			})
		},
	}
	mountFlag(cmd, &mount)
	cmd.Flags().StringVar(&f.Issuer, "issuer", "", "only certificates of this issuer")
	cmd.Flags().StringVar(&f.Name, "name", "", "only certificates with this DNS name or IP address")
	cmd.Flags().StringVar(&f.RequestedBy, "requested-by", "", "only certificates this account asked for")
	cmd.Flags().StringVar(&f.Status, "status", "", "valid, revoked or expired")
	cmd.Flags().StringVar(&expiring, "expiring", "", "only valid certificates expiring within this duration (30d)")
	cmd.Flags().IntVar(&f.Limit, "limit", 0, "at most this many (default 100, at most 1000)")
	return cmd
}

func showCmd() *cobra.Command {
	var mount string
	cmd := &cobra.Command{
		Use:     "show SERIAL",
		Short:   "Show one issued certificate with its PEM",
		Example: "  metacryptctl show 3f1a9c0d...\n  metacryptctl show 3f1a9c0d... --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				cert, err := c.Certificate(cmd.Context(), mount, args[0])
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), cert, func(w *tabwriter.Writer) {
					certTable([]client.Certificate{cert})(w)
					fmt.Fprintf(w, "\n%s", cert.CertificatePEM)
				})
			})
		},
	}
	mountFlag(cmd, &mount)
	return cmd
}

func crlCmd() *cobra.Command {
	var mount, out string
	var rebuild bool
	cmd := &cobra.Command{
		Use:   "crl ISSUER",
		Short: "Show (or rebuild, admin) an issuer's CRL; root for the root's",
		Example: `  metacryptctl crl services
  metacryptctl crl services --out services.crl.pem
  metacryptctl crl services --rebuild`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				get := c.CRL
				if rebuild {
					get = c.RebuildCRL
				}
				crl, err := get(cmd.Context(), mount, args[0])
				if err != nil {
					return err
				}
				if out != "" {
					if err := atomicfile.Write(out, []byte(crl.PEM), 0o644); err != nil {
						return err
					}
				}
				return tool.Print(cmd.OutOrStdout(), crl, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "issuer\t%s\nnumber\t%d\nthis update\t%s\nnext update\t%s\nrevoked\t%d\n", crl.Issuer, crl.Number,
						crl.ThisUpdate.Local().Format(time.DateTime), crl.NextUpdate.Local().Format(time.DateTime), len(crl.Revoked))
					for _, s := range crl.Revoked {
						fmt.Fprintf(w, "\t%s\n", s)
					}
				})
			})
		},
	}
	mountFlag(cmd, &mount)
	cmd.Flags().StringVar(&out, "out", "", "also write the CRL (PEM) to this file")
	cmd.Flags().BoolVar(&rebuild, "rebuild", false, "sign a fresh CRL now (admin)")
	return cmd
}
