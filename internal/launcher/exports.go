package launcher

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"git.metacircular.net/metacircular/mcdsl/atomicfile"
)

// envFile is <root>/env: shell exports that point the platform's CLIs at
// this platform (see EnvFile).
const envFile = "env"

// EnvFile is the path of the exports Up writes under root.
func EnvFile(root string) string { return filepath.Join(root, envFile) }

// writeEnv writes <root>/env from the running services' Exports, plus
// METACIRCULAR_ROOT and METACIRCULAR_CA.
func (r *run) writeEnv() error {
	root, err := filepath.Abs(r.opts.Root)
	if err != nil {
		return err
	}
	vars := map[string]string{"METACIRCULAR_ROOT": root, "METACIRCULAR_CA": r.ca.CertPath()}
	for _, c := range r.children {
		maps.Copy(vars, c.proc.Exports)
	}
	var b strings.Builder
	b.WriteString("# Written by \"metacircular up\": eval \"$(metacircular env)\" points the\n")
	b.WriteString("# platform's CLIs (mciasctl, mcnsctl, mcproxyctl) at this platform.\n")
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(vars[k]))
	}
	return atomicfile.Write(EnvFile(r.opts.Root), []byte(b.String()), 0o600)
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ReadEnv returns <root>/env, which "metacircular up" writes once every
// service is up.
func ReadEnv(root string) (string, error) {
	b, err := os.ReadFile(EnvFile(root)) //nolint:gosec // under the operator's state root
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s does not exist: run \"metacircular up --root %s\" first", EnvFile(root), root)
	}
	return string(b), err
}
