package ca

import "fmt"

// wrapf wraps a sentinel with a message: "<sentinel>: <message>".
func wrapf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
