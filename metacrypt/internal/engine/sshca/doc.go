// Package sshca is the SSH CA engine: per "ssh" mount, a CA key generated
// inside the barrier (Ed25519 by default; ECDSA P-256/P-384, RSA
// 3072/4096) signs OpenSSH user and host certificates under named signing
// profiles, records every certificate by serial, revokes by serial,
// public key, fingerprint or key ID, and keeps an OpenSSH binary KRL
// (PROTOCOL.krl, encoded by krl.go) rebuilt on every revocation.
//
// The CA key is read through the barrier for each signature and dropped;
// the engine keeps nothing in memory between operations. Every operation
// is authorized here, for every entry point alike (the typed gRPC
// service SSHService and its REST face, the generic engine request),
// exactly as the CA engine does: the mount's ACL rule for the operation
// and resource, admins bypassing the rules but never a profile's limits.
//
// The CA public key and the KRL are also copied, on every change, to a
// Publisher outside the barrier (the store's clear ssh_public table), and
// Public reads that copy without the barrier, so the unauthenticated
// endpoints GET /v1/ssh/{mount}/ca and /krl answer while sealed, as the
// CA engine's CRLs do.
//
// Operations (generic operation = typed method; ACL operation on
// resource):
//
//	generate-ca     GenerateCA        manage on "ca"
//	get-ca          GetCA             public: no ACL (the CA public key)
//	krl             KRL               public: no ACL (the KRL bytes)
//	create-profile  CreateProfile     manage on "profile/<name>"
//	update-profile  UpdateProfile     manage on "profile/<name>"
//	delete-profile  DeleteProfile     manage on "profile/<name>"
//	get-profile     GetProfile        read on "profile/<name>"
//	list-profiles   ListProfiles      read on "profiles"
//	sign            Sign              sign on "profile/<name>"
//	get             GetCertificate    read on "profile/<its profile>" (unknown serial: read on "certs")
//	list            ListCertificates  read on "certs"
//	revoke          Revoke            serial: revoke on "profile/<its profile>", and the caller
//	                                  must be allowed the certificate's principals by that
//	                                  profile unless admin; key, fingerprint or key ID:
//	                                  revoke on "krl"
//
// The ACL operations are the policy's existing ones (manage, read,
// sign, revoke). The generic request's path may name the resource
// ("profile/<name>" for profile operations and sign, "cert/<serial>" for
// get and revoke) instead of the data field.
package sshca
