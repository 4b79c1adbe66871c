package terminal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// ReadPassword prompts on stderr and reads a password from stdin.
func ReadPassword(prompt string) (string, error) {
	return ReadPasswordFrom(os.Stdin, os.Stderr, prompt)
}

// ReadPasswordFrom prompts on out and reads one line from in. When in is a
// terminal, echo is off while the user types and restored afterwards.
func ReadPasswordFrom(in *os.File, out io.Writer, prompt string) (string, error) {
	if _, err := io.WriteString(out, prompt); err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	fd := int(in.Fd()) //nolint:gosec // file descriptors fit in int
	if term.IsTerminal(fd) {
		b, err := term.ReadPassword(fd)
		_, _ = io.WriteString(out, "\n")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
