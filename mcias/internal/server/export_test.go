package server

import (
	"context"
	"time"

	"git.metacircular.net/metacircular/mcdsl/service"
)

// BuildAt is Build with the identity service's clock replaced by now, for
// tests that move time forward (SSO code expiry).
func BuildAt(now func() time.Time) func(context.Context, *Config, *service.Runtime) error {
	return func(ctx context.Context, cfg *Config, rt *service.Runtime) error {
		return build(ctx, cfg, rt, hooks{now: now})
	}
}

// BuildHashHook is Build with hook run inside every Argon2 slot before the
// hash, for tests that hold a slot (the concurrency bound).
func BuildHashHook(hook func()) func(context.Context, *Config, *service.Runtime) error {
	return func(ctx context.Context, cfg *Config, rt *service.Runtime) error {
		return build(ctx, cfg, rt, hooks{hash: hook})
	}
}
