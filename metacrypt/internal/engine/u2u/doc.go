// Package u2u is the user-to-user engine: per "u2u" mount, every MCIAS
// user has an X25519 key pair generated inside the barrier (on their
// first send, or explicitly), and users send each other messages only the
// recipient can open, which tell the recipient who sent them.
//
// # Scheme
//
// A message from S (static key s, public S, version vs) to R (public R,
// version vr) draws an ephemeral key pair (e, E) and computes
//
//	dh1 = X25519(e, R)    ephemeral-static: a fresh key per message
//	dh2 = X25519(s, R)    static-static: only S's key (or R's) computes it
//	key || nonce = HKDF-SHA256(ikm = dh1 || dh2, salt = empty,
//	                           info = "metacrypt/u2u/v1" 0x00 || header || S || R, 44 bytes)
//	ciphertext = AES-256-GCM(key, nonce, plaintext, aad = header || associated data)
//
// This is the construction of HPKE's Auth mode (RFC 9180 §5.1.3),
// written here because crypto/hpke offers only the Base mode. Ephemeral-
// static alone would let anyone claim any sender; static-static alone
// would give every message between two key versions the same key and no
// forward secrecy against a later leak of the sender's key. Together, each
// message has its own key, and opening it proves the named sender's
// static key took part: a header naming another sender (a replay with a
// swapped sender field) derives another key and fails. The header
// (identities, key versions, time, E) is both in the key derivation and
// the AEAD's additional data.
//
// Trust: the engine holds every private key, so the guarantees are
// against everyone but Metacrypt itself. It uses S's key only for the
// authenticated caller S and R's only for R: an admin bypasses ACL rules
// but cannot open another user's messages. As in HPKE Auth mode, a holder
// of R's private key could forge messages to R from anyone (key
// compromise impersonation); here that means compromising Metacrypt.
// Messages carry no replay protection: the recipient may open one many
// times, and a message is data at rest. A username reused for another
// MCIAS account (another subject) cannot use, and so cannot read what was
// sent to, the former holder's keys.
//
// # Message format (version 1)
//
//	byte    1
//	uint16  len(sender), sender username
//	uint32  sender key version
//	uint16  len(recipient), recipient username
//	uint32  recipient key version
//	uint64  sent at, Unix seconds
//	[32]    E
//	...     AES-256-GCM ciphertext || 16-byte tag
//
// big-endian. Rotation adds a key version: new messages use the
// recipient's latest, and older versions are kept so old messages open.
//
// # Operations
//
// Generic operation = typed method; ACL operation on resource:
//
//	create-key  CreateKey  manage on "user/<caller>"
//	rotate-key  RotateKey  manage on "user/<caller>"
//	get-key     GetKey     read on "user/<name>" (public keys)
//	list-keys   ListKeys   read on "users" (public keys)
//	send        Send       send on "user/<recipient>"
//	open        Open       open on "user/<caller>"
//
// send and open are the u2u engine's ACL operations (ACLOperations),
// which policy.Operations lists too. The generic request's path may name
// the user ("user/<name>") for get-key and send. Authorization is here,
// for every entry point (the gRPC service U2UService and its REST face,
// the generic request), as in the CA engine.
package u2u
