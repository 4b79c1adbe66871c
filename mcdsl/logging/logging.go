package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Config is the standard [log] config section.
type Config struct {
	// Level is one of debug, info, warn, error. Empty means info.
	Level string `toml:"level"`
	// Format is "text" (default) or "json".
	Format string `toml:"format"`
}

// Redacted replaces the value of any attribute whose key names a secret.
const Redacted = "[REDACTED]"

// secretKeys are attribute-key fragments that mark a value as a secret.
var secretKeys = []string{"password", "passwd", "secret", "token", "private_key", "privatekey", "authorization", "cookie", "totp", "recovery_code"}

// ParseLevel turns a config level name into a slog.Level.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: expected debug, info, warn or error", s)
}

// New builds a logger writing to w according to cfg.
func New(cfg Config, w io.Writer) (*slog.Logger, error) {
	level, err := ParseLevel(cfg.Level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redact}
	switch strings.ToLower(cfg.Format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: expected text or json", cfg.Format)
}

// IsSecretKey reports whether an attribute key names a secret value.
func IsSecretKey(key string) bool {
	k := strings.ToLower(key)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

func redact(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindGroup && IsSecretKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	return a
}

// Discard returns a logger that drops everything; for tests and tools that
// must stay quiet.
func Discard() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}
