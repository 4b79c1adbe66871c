// Package imagebuild is "mcp build": it builds a service's images from
// its [build.images] Dockerfiles with podman, tagging each with the
// pinned reference of the component that uses it, and pushes them to the
// registry (MCR), logging in with the operator's MCIAS token as the
// password. podman's own progress goes to the output as it comes.
package imagebuild

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"git.metacircular.net/metacircular/mcp/internal/spec"
)

// Image is one image to build.
type Image struct {
	Ref        string
	Registry   string
	Dockerfile string
	Context    string
}

// Builder builds and pushes.
type Builder struct {
	Podman string
	// Workspace is the source tree; a service's path is relative to it.
	Workspace string
	// CertDir trusts the registry's CA ("" the system's).
	CertDir string
	// Out receives progress.
	Out io.Writer
}

// Plan lists the images of sp, sorted by reference.
func (b *Builder) Plan(sp *spec.Service) ([]Image, error) {
	if len(sp.BuildImages) == 0 {
		return nil, fmt.Errorf("service %s has no [build.images]", sp.Name)
	}
	if b.Workspace == "" {
		return nil, errors.New("no build workspace: set [build] workspace in mcp.toml")
	}
	ctxDir := filepath.Join(b.Workspace, sp.Path)
	var out []Image
	for repo, df := range sp.BuildImages {
		var ref string
		for _, c := range sp.Components {
			if img, err := spec.ParseImage(c.Image); err == nil && img.Name() == repo {
				ref = c.Image
			}
		}
		if ref == "" {
			return nil, fmt.Errorf("build.images.%s: no component image is named %s", repo, repo)
		}
		img, _ := spec.ParseImage(ref)
		out = append(out, Image{Ref: ref, Registry: img.Registry, Dockerfile: filepath.Join(ctxDir, df), Context: ctxDir})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, nil
}

func (b *Builder) podman(ctx context.Context, stdin io.Reader, args ...string) error {
	cmd := exec.CommandContext(ctx, b.Podman, args...) //nolint:gosec // the configured podman binary
	cmd.Stdout, cmd.Stderr, cmd.Stdin = b.Out, b.Out, stdin
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("podman %s: %w", args[0], err)
	}
	return nil
}

// Login logs podman in to registry with token (an MCIAS token; the
// username is read from it).
func (b *Builder) Login(ctx context.Context, registry, token string) error {
	user, err := TokenUser(token)
	if err != nil {
		return err
	}
	args := []string{"login", "--username", user, "--password-stdin"}
	if b.CertDir != "" {
		args = append(args, "--cert-dir", b.CertDir)
	}
	return b.podman(ctx, strings.NewReader(token+"\n"), append(args, registry)...)
}

// Build builds one image.
func (b *Builder) Build(ctx context.Context, img Image) error {
	if _, err := os.Stat(img.Dockerfile); err != nil {
		return fmt.Errorf("build %s: %w", img.Ref, err)
	}
	return b.podman(ctx, nil, "build", "--format", "oci", "--file", img.Dockerfile, "--tag", img.Ref, img.Context)
}

// Push pushes one image.
func (b *Builder) Push(ctx context.Context, img Image) error {
	args := []string{"push"}
	if b.CertDir != "" {
		args = append(args, "--cert-dir", b.CertDir)
	}
	return b.podman(ctx, nil, append(args, img.Ref)...)
}

// TokenUser reads the username claim of a JWT without verifying it (the
// registry verifies the token; the name only says whose it is).
func TokenUser(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("the token is not a JWT: log in again (mcp login)")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	var claims struct {
		Username string `json:"username"`
		Sub      string `json:"sub"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	if claims.Username == "" {
		return "", errors.New("token: no username claim")
	}
	return claims.Username, nil
}
