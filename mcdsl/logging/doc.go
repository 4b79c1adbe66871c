// Package logging configures the platform's structured logger. Every service
// logs through log/slog with the level taken from its [log] config section,
// one event per line, and with secret-looking attributes (passwords, tokens,
// keys) redacted before they reach the output.
package logging
