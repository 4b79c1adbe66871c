// Package atomicfile replaces files so that a crash or a full disk leaves
// either the old content or the new, never a torn mix: keys, certificates,
// generated configs and state files are all written through it.
package atomicfile
