package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
	"git.metacircular.net/metacircular/metacrypt/client"
)

func transitCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "transit", Short: "Transit: encryption, signing and HMAC with named, versioned keys that stay in Metacrypt",
		Long: `A "transit" mount holds named keys (aes256-gcm96, chacha20-poly1305, ed25519,
ecdsa-p256, hmac) that encrypt, decrypt, rewrap, make data keys, sign, verify
and HMAC for you; a key leaves Metacrypt only if it was created exportable.
Ciphertexts, signatures and HMACs look like metacrypt:v<version>:<base64>.

Input is read from --in FILE or standard input and sent as bytes (base64 is
handled for you); --associated-data and --context are text. Decrypted
plaintext is written as raw bytes to standard output or --out. Batches read
a JSON array from --batch FILE: [{"plaintext":"<base64>"}, ...] to encrypt,
[{"ciphertext":"metacrypt:v1:..."}, ...] to decrypt or rewrap (each item may
carry "associated_data" and "context", base64).

Commands work on the mount given by --mount (default "transit").`,
		Example: `  metacryptctl transit keys create orders
  echo -n 'card 4111...' | metacryptctl transit encrypt orders > secret.txt
  metacryptctl transit decrypt orders --in secret.txt
  metacryptctl transit keys rotate orders && metacryptctl transit rewrap orders --in secret.txt`}
	cmd.AddCommand(transitKeysCmd(), transitEncryptCmd(), transitDecryptCmd(), transitRewrapCmd(), transitDataKeyCmd(),
		transitSignCmd(), transitVerifyCmd(), transitHMACCmd())
	return cmd
}

func transitMountFlag(cmd *cobra.Command, mount *string) {
	cmd.Flags().StringVar(mount, "mount", "transit", "transit mount")
}

// cryptFlags are the input and the authenticated extras of a transit
// operation.
type cryptFlags struct {
	in, aad, context string
}

func (f *cryptFlags) add(cmd *cobra.Command, what string, withContext bool) {
	cmd.Flags().StringVar(&f.in, "in", "", what+" file (default and -: standard input)")
	cmd.Flags().StringVar(&f.aad, "associated-data", "", "associated data (text): authenticated, not encrypted; decryption needs the same")
	if withContext {
		cmd.Flags().StringVar(&f.context, "context", "", "key derivation context (text), required by derived keys")
	}
}

func (f *cryptFlags) aadBytes() []byte     { return optionalBytes(f.aad) }
func (f *cryptFlags) contextBytes() []byte { return optionalBytes(f.context) }

func optionalBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// readValue reads a ciphertext, signature or HMAC: the argument if given,
// else the input file or standard input, trimmed.
func readValue(args []string, in string) (string, error) {
	if len(args) > 0 {
		return args[0], nil
	}
	b, err := readInput(in)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", errors.New("no value: give it as an argument, with --in, or on standard input")
	}
	return v, nil
}

// readBatch reads a JSON array of batch items.
func readBatch(path string) ([]client.BatchItem, error) {
	b, err := readInput(path)
	if err != nil {
		return nil, err
	}
	var items []client.BatchItem
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, fmt.Errorf("--batch %s: want a JSON array of items (byte fields base64): %w", path, err)
	}
	return items, nil
}

// printBatch prints a batch's results and fails if any item did.
func printBatch(out io.Writer, rs []client.BatchResult) error {
	failed := 0
	for _, r := range rs {
		if r.Error != "" {
			failed++
		}
	}
	if err := tool.Print(out, rs, func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "ITEM\tVERSION\tRESULT\tERROR")
		for i, r := range rs {
			res := r.Ciphertext
			if r.Plaintext != nil {
				res = base64.StdEncoding.EncodeToString(r.Plaintext)
			}
			fmt.Fprintf(w, "%d\t%d\t%s\t%s\n", i, r.KeyVersion, joinOr([]string{res}, "-"), joinOr([]string{r.Error}, "-"))
		}
	}); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d items failed", failed, len(rs))
	}
	return nil
}

// printLine prints a single value (ciphertext, signature, HMAC) on its
// own line, or v as JSON.
func printLine(out io.Writer, v any, line string) error {
	if tool.JSON {
		return tool.Print(out, v, nil)
	}
	_, err := fmt.Fprintln(out, line)
	return err
}

func transitKeyTable(list []client.TransitKey) func(*tabwriter.Writer) {
	return func(w *tabwriter.Writer) {
		fmt.Fprintln(w, "NAME\tTYPE\tLATEST\tMIN DECRYPT\tMIN ENCRYPT\tDERIVED\tEXPORTABLE\tDELETABLE\tCREATED")
		for _, k := range list {
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%t\t%t\t%t\t%s\n", k.Name, k.Type, k.LatestVersion, k.MinDecryptionVersion,
				k.MinEncryptionVersion, k.Derived, k.Exportable, k.DeletionAllowed, k.CreatedAt.Local().Format(time.DateTime))
		}
	}
}

func transitKeysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List, show, create, rotate, configure, delete and export keys",
		Example: "  metacryptctl transit keys create orders\n  metacryptctl transit keys rotate orders\n  metacryptctl transit keys config orders --min-decryption-version 2"}
	var mount string
	keyResult := func(cmd *cobra.Command, k client.TransitKey, err error) error {
		if err != nil {
			return err
		}
		return tool.Print(cmd.OutOrStdout(), k, transitKeyTable([]client.TransitKey{k}))
	}
	list := &cobra.Command{Use: "list", Short: "List the key names (read on keys)", Args: cobra.NoArgs,
		Example: "  metacryptctl transit keys list\n  metacryptctl transit keys list --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(true, func(c *client.Client) error {
				names, err := c.TransitKeys(cmd.Context(), mount)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), names, func(w *tabwriter.Writer) {
					fmt.Fprintln(w, "NAME")
					for _, n := range names {
						fmt.Fprintln(w, n)
					}
				})
			})
		}}
	transitMountFlag(list, &mount)
	show := &cobra.Command{Use: "show NAME", Short: "Describe a key and its versions (read on key/NAME)", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl transit keys show orders\n  metacryptctl transit keys show release-signing --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				k, err := c.TransitKey(cmd.Context(), mount, args[0])
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), k, func(w *tabwriter.Writer) {
					transitKeyTable([]client.TransitKey{k})(w)
					fmt.Fprintln(w, "\nVERSION\tCREATED")
					for _, v := range k.Versions {
						fmt.Fprintf(w, "%d\t%s\n", v.Version, v.CreatedAt.Local().Format(time.DateTime))
					}
					for _, v := range k.Versions {
						if v.PublicKeyPEM != "" {
							fmt.Fprintf(w, "\nversion %d public key:\n%s", v.Version, v.PublicKeyPEM)
						}
					}
				})
			})
		}}
	transitMountFlag(show, &mount)
	var r client.TransitKeyRequest
	create := &cobra.Command{Use: "create NAME", Short: "Create a key with its first version (manage on key/NAME)", Args: cobra.ExactArgs(1),
		Example: `  metacryptctl transit keys create orders
  metacryptctl transit keys create tenants --derived
  metacryptctl transit keys create release-signing --type ed25519
  metacryptctl transit keys create backup-export --exportable`,
		RunE: func(cmd *cobra.Command, args []string) error {
			r.Name = args[0]
			return withClient(true, func(c *client.Client) error {
				k, err := c.CreateTransitKey(cmd.Context(), mount, r)
				return keyResult(cmd, k, err)
			})
		}}
	transitMountFlag(create, &mount)
	create.Flags().StringVar(&r.Type, "type", "", "aes256-gcm96 (default), chacha20-poly1305, ed25519, ecdsa-p256, hmac")
	create.Flags().BoolVar(&r.Derived, "derived", false, "derive each request's key from its --context (encryption types)")
	create.Flags().BoolVar(&r.Exportable, "exportable", false, "allow export, for ever (cannot be set later)")
	rotate := &cobra.Command{Use: "rotate NAME", Short: "Add a version; new requests use it, old ciphertexts still decrypt (manage)", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl transit keys rotate orders",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				k, err := c.RotateTransitKey(cmd.Context(), mount, args[0])
				return keyResult(cmd, k, err)
			})
		}}
	transitMountFlag(rotate, &mount)
	var minDec, minEnc int
	var deletable bool
	config := &cobra.Command{Use: "config NAME", Short: "Change min_decryption_version, min_encryption_version or deletion_allowed (manage)", Args: cobra.ExactArgs(1),
		Long: `config changes only the settings given. Raising --min-decryption-version
makes ciphertexts of older versions undecryptable: rewrap them first.`,
		Example: `  metacryptctl transit keys config orders --min-decryption-version 2
  metacryptctl transit keys config old-key --deletion-allowed`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg client.TransitKeyConfig
			fl := cmd.Flags()
			if fl.Changed("min-decryption-version") {
				cfg.MinDecryptionVersion = &minDec
			}
			if fl.Changed("min-encryption-version") {
				cfg.MinEncryptionVersion = &minEnc
			}
			if fl.Changed("deletion-allowed") {
				cfg.DeletionAllowed = &deletable
			}
			if cfg == (client.TransitKeyConfig{}) {
				return errors.New("nothing to change: give --min-decryption-version, --min-encryption-version or --deletion-allowed")
			}
			return withClient(true, func(c *client.Client) error {
				k, err := c.ConfigureTransitKey(cmd.Context(), mount, args[0], cfg)
				return keyResult(cmd, k, err)
			})
		}}
	transitMountFlag(config, &mount)
	config.Flags().IntVar(&minDec, "min-decryption-version", 0, "oldest version that still decrypts, verifies and rewraps")
	config.Flags().IntVar(&minEnc, "min-encryption-version", 0, "oldest version a request may name to encrypt, sign or HMAC (0: any)")
	config.Flags().BoolVar(&deletable, "deletion-allowed", false, "allow (or with =false forbid) deleting the key")
	del := &cobra.Command{Use: "delete NAME", Short: "Delete a key and every version; set --deletion-allowed first (manage)", Args: cobra.ExactArgs(1),
		Example: "  metacryptctl transit keys config old-key --deletion-allowed && metacryptctl transit keys delete old-key",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				if err := c.DeleteTransitKey(cmd.Context(), mount, args[0]); err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), map[string]string{"deleted": args[0]}, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "key %s deleted\n", args[0])
				})
			})
		}}
	transitMountFlag(del, &mount)
	var version int
	export := &cobra.Command{Use: "export NAME", Short: "Print an exportable key's material, base64 (export on key/NAME)", Args: cobra.ExactArgs(1),
		Long: `export prints the key material of a key created --exportable: raw 32-byte
keys (and HMAC keys) for the symmetric types, PKCS#8 DER for the signing
types, in base64. Handle the output as the secret it is.`,
		Example: "  metacryptctl transit keys export backup-export --version 1 --json > key.json",
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(true, func(c *client.Client) error {
				k, err := c.ExportTransitKey(cmd.Context(), mount, args[0], version)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), k, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "key %s (%s)\nVERSION\tKEY\tHMAC KEY\n", k.Name, k.Type)
					for _, v := range k.Versions {
						fmt.Fprintf(w, "%d\t%s\t%s\n", v.Version, base64.StdEncoding.EncodeToString(v.Key),
							joinOr([]string{base64.StdEncoding.EncodeToString(v.HMACKey)}, "-"))
					}
				})
			})
		}}
	transitMountFlag(export, &mount)
	export.Flags().IntVar(&version, "version", 0, "version to export (default: every version from min_decryption_version)")
	cmd.AddCommand(list, show, create, rotate, config, del, export)
	return cmd
}

func transitEncryptCmd() *cobra.Command {
	var mount, batch string
	var keyVersion int
	var f cryptFlags
	cmd := &cobra.Command{
		Use:   "encrypt KEY",
		Short: "Encrypt bytes from --in or standard input; prints the ciphertext (encrypt on key/KEY)",
		Example: `  echo -n 'attack at dawn' | metacryptctl transit encrypt orders
  metacryptctl transit encrypt orders --in invoice.pdf --associated-data order-42 > invoice.pdf.enc
  metacryptctl transit encrypt tenants --context tenant-7 --in secret.txt
  metacryptctl transit encrypt orders --batch items.json --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch != "" {
				items, err := readBatch(batch)
				if err != nil {
					return err
				}
				return withClient(true, func(c *client.Client) error {
					rs, err := c.EncryptBatch(cmd.Context(), mount, args[0], keyVersion, items)
					if err != nil {
						return err
					}
					return printBatch(cmd.OutOrStdout(), rs)
				})
			}
			pt, err := readInput(f.in)
			if err != nil {
				return err
			}
			defer clear(pt)
			return withClient(true, func(c *client.Client) error {
				ct, err := c.Encrypt(cmd.Context(), mount, client.EncryptRequest{Key: args[0], Plaintext: pt,
					AssociatedData: f.aadBytes(), Context: f.contextBytes(), KeyVersion: keyVersion})
				if err != nil {
					return err
				}
				return printLine(cmd.OutOrStdout(), ct, ct.Ciphertext)
			})
		},
	}
	transitMountFlag(cmd, &mount)
	f.add(cmd, "plaintext", true)
	cmd.Flags().IntVar(&keyVersion, "key-version", 0, "key version to encrypt with (default: the latest)")
	cmd.Flags().StringVar(&batch, "batch", "", `JSON file of items [{"plaintext":"<base64>"}, ...] to encrypt in one request`)
	return cmd
}

func transitDecryptCmd() *cobra.Command {
	var mount, batch, out string
	var f cryptFlags
	cmd := &cobra.Command{
		Use:   "decrypt KEY [CIPHERTEXT]",
		Short: "Decrypt a ciphertext (argument, --in or standard input); writes the plaintext bytes (decrypt on key/KEY)",
		Example: `  metacryptctl transit decrypt orders metacrypt:v1:3q2+7w...
  metacryptctl transit decrypt orders --in invoice.pdf.enc --associated-data order-42 --out invoice.pdf
  metacryptctl transit decrypt orders --batch ciphertexts.json --json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch != "" {
				items, err := readBatch(batch)
				if err != nil {
					return err
				}
				return withClient(true, func(c *client.Client) error {
					rs, err := c.DecryptBatch(cmd.Context(), mount, args[0], items)
					if err != nil {
						return err
					}
					return printBatch(cmd.OutOrStdout(), rs)
				})
			}
			ct, err := readValue(args[1:], f.in)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				pt, err := c.Decrypt(cmd.Context(), mount, client.DecryptRequest{Key: args[0], Ciphertext: ct,
					AssociatedData: f.aadBytes(), Context: f.contextBytes()})
				if err != nil {
					return err
				}
				defer clear(pt.Plaintext)
				if tool.JSON {
					return tool.Print(cmd.OutOrStdout(), pt, nil)
				}
				if out != "" {
					return atomicfile.Write(out, pt.Plaintext, 0o600)
				}
				_, err = cmd.OutOrStdout().Write(pt.Plaintext)
				return err
			})
		},
	}
	transitMountFlag(cmd, &mount)
	f.add(cmd, "ciphertext", true)
	cmd.Flags().StringVar(&out, "out", "", "write the plaintext to this file (mode 0600) instead of standard output")
	cmd.Flags().StringVar(&batch, "batch", "", `JSON file of items [{"ciphertext":"metacrypt:v1:..."}, ...] to decrypt in one request`)
	return cmd
}

func transitRewrapCmd() *cobra.Command {
	var mount, batch string
	var keyVersion int
	var f cryptFlags
	cmd := &cobra.Command{
		Use:   "rewrap KEY [CIPHERTEXT]",
		Short: "Re-encrypt a ciphertext with the latest key version without revealing the plaintext (rewrap on key/KEY)",
		Example: `  metacryptctl transit rewrap orders --in secret.txt > secret.txt.new
  metacryptctl transit rewrap orders metacrypt:v1:3q2+7w...
  metacryptctl transit rewrap orders --batch ciphertexts.json --json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if batch != "" {
				items, err := readBatch(batch)
				if err != nil {
					return err
				}
				return withClient(true, func(c *client.Client) error {
					rs, err := c.RewrapBatch(cmd.Context(), mount, args[0], keyVersion, items)
					if err != nil {
						return err
					}
					return printBatch(cmd.OutOrStdout(), rs)
				})
			}
			ct, err := readValue(args[1:], f.in)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				nct, err := c.Rewrap(cmd.Context(), mount, client.DecryptRequest{Key: args[0], Ciphertext: ct,
					AssociatedData: f.aadBytes(), Context: f.contextBytes(), KeyVersion: keyVersion})
				if err != nil {
					return err
				}
				return printLine(cmd.OutOrStdout(), nct, nct.Ciphertext)
			})
		},
	}
	transitMountFlag(cmd, &mount)
	f.add(cmd, "ciphertext", true)
	cmd.Flags().IntVar(&keyVersion, "key-version", 0, "key version to encrypt with (default: the latest)")
	cmd.Flags().StringVar(&batch, "batch", "", `JSON file of items [{"ciphertext":"metacrypt:v1:..."}, ...] to rewrap in one request`)
	return cmd
}

func transitDataKeyCmd() *cobra.Command {
	var mount string
	var r client.DataKeyRequest
	var f cryptFlags
	cmd := &cobra.Command{
		Use:   "datakey KEY",
		Short: "Make a random data key wrapped by KEY, for envelope encryption (datakey on key/KEY)",
		Long: `datakey draws a random data key and prints it wrapped by the transit key
(store that beside your data; "transit decrypt" unwraps it) and, with
--plaintext, the key itself in base64 to encrypt with locally.`,
		Example: `  metacryptctl transit datakey orders --plaintext --json
  metacryptctl transit datakey orders --bits 512`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.Key, r.AssociatedData, r.Context = args[0], f.aadBytes(), f.contextBytes()
			return withClient(true, func(c *client.Client) error {
				dk, err := c.GenerateDataKey(cmd.Context(), mount, r)
				if err != nil {
					return err
				}
				return tool.Print(cmd.OutOrStdout(), dk, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "ciphertext\t%s\nkey version\t%d\n", dk.Ciphertext, dk.KeyVersion)
					if dk.Plaintext != nil {
						fmt.Fprintf(w, "plaintext\t%s\n", base64.StdEncoding.EncodeToString(dk.Plaintext))
					}
				})
			})
		},
	}
	transitMountFlag(cmd, &mount)
	cmd.Flags().IntVar(&r.Bits, "bits", 0, "128, 256 (default) or 512")
	cmd.Flags().BoolVar(&r.IncludePlaintext, "plaintext", false, "also print the data key itself (base64)")
	cmd.Flags().StringVar(&f.aad, "associated-data", "", "associated data (text) the wrapped key is bound to")
	cmd.Flags().StringVar(&f.context, "context", "", "key derivation context (text), required by derived keys")
	return cmd
}

func transitSignCmd() *cobra.Command {
	var mount string
	var prehashed bool
	var keyVersion int
	var f cryptFlags
	cmd := &cobra.Command{
		Use:   "sign KEY",
		Short: "Sign bytes from --in or standard input with an ed25519 or ecdsa-p256 key (sign on key/KEY)",
		Example: `  metacryptctl transit sign release-signing --in release.tar.gz > release.sig
  sha256sum release.tar.gz | cut -d' ' -f1 | xxd -r -p | metacryptctl transit sign ecdsa-key --prehashed`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			input, err := readInput(f.in)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				sig, err := c.TransitSign(cmd.Context(), mount, args[0], input, prehashed, keyVersion)
				if err != nil {
					return err
				}
				return printLine(cmd.OutOrStdout(), sig, sig.Signature)
			})
		},
	}
	transitMountFlag(cmd, &mount)
	cmd.Flags().StringVar(&f.in, "in", "", "input file (default and -: standard input)")
	cmd.Flags().BoolVar(&prehashed, "prehashed", false, "the input is a SHA-256 digest (ecdsa-p256 only)")
	cmd.Flags().IntVar(&keyVersion, "key-version", 0, "key version to sign with (default: the latest)")
	return cmd
}

func transitHMACCmd() *cobra.Command {
	var mount, algorithm string
	var keyVersion int
	var f cryptFlags
	cmd := &cobra.Command{
		Use:   "hmac KEY",
		Short: "HMAC bytes from --in or standard input (hmac on key/KEY)",
		Example: `  echo -n 'user-42' | metacryptctl transit hmac pseudonyms
  metacryptctl transit hmac pseudonyms --in data.csv --algorithm sha2-512`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			input, err := readInput(f.in)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				m, err := c.TransitHMAC(cmd.Context(), mount, args[0], input, algorithm, keyVersion)
				if err != nil {
					return err
				}
				return printLine(cmd.OutOrStdout(), m, m.HMAC)
			})
		},
	}
	transitMountFlag(cmd, &mount)
	cmd.Flags().StringVar(&f.in, "in", "", "input file (default and -: standard input)")
	cmd.Flags().StringVar(&algorithm, "algorithm", "", "sha2-256 (default) or sha2-512")
	cmd.Flags().IntVar(&keyVersion, "key-version", 0, "key version (default: the latest)")
	return cmd
}

func transitVerifyCmd() *cobra.Command {
	var mount, signature, hmac, algorithm string
	var prehashed bool
	var f cryptFlags
	cmd := &cobra.Command{
		Use:   "verify KEY (--signature SIG | --hmac HMAC)",
		Short: "Check a signature or an HMAC of bytes from --in or standard input; exits 1 if invalid (verify on key/KEY)",
		Example: `  metacryptctl transit verify release-signing --in release.tar.gz --signature "$(cat release.sig)"
  echo -n 'user-42' | metacryptctl transit verify pseudonyms --hmac metacrypt:v1:8Jk...`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (signature == "") == (hmac == "") {
				return errors.New("give exactly one of --signature and --hmac")
			}
			input, err := readInput(f.in)
			if err != nil {
				return err
			}
			return withClient(true, func(c *client.Client) error {
				var ok bool
				var err error
				if signature != "" {
					ok, err = c.TransitVerify(cmd.Context(), mount, args[0], input, prehashed, signature)
				} else {
					ok, err = c.TransitVerifyHMAC(cmd.Context(), mount, args[0], input, algorithm, hmac)
				}
				if err != nil {
					return err
				}
				res := map[string]bool{"valid": ok}
				if err := tool.Print(cmd.OutOrStdout(), res, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "valid\t%t\n", ok)
				}); err != nil {
					return err
				}
				if !ok {
					return errors.New("does not verify")
				}
				return nil
			})
		},
	}
	transitMountFlag(cmd, &mount)
	cmd.Flags().StringVar(&f.in, "in", "", "input file (default and -: standard input)")
	cmd.Flags().StringVar(&signature, "signature", "", "signature (metacrypt:v<N>:...) to check")
	cmd.Flags().StringVar(&hmac, "hmac", "", "HMAC (metacrypt:v<N>:...) to check")
	cmd.Flags().BoolVar(&prehashed, "prehashed", false, "the input is a SHA-256 digest (ecdsa-p256 only)")
	cmd.Flags().StringVar(&algorithm, "algorithm", "", "HMAC algorithm: sha2-256 (default) or sha2-512")
	return cmd
}
