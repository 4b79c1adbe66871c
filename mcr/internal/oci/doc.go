// Package oci holds the vocabulary of the OCI distribution and image
// specifications as MCR uses it: repository names, tags, digests (sha256
// and sha512 only), media types, upload ranges and the spec's error codes.
// It imports nothing of MCR's, so every other package can depend on it.
package oci
