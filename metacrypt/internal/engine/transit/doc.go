// Package transit is the transit engine: named, versioned keys per
// "transit" mount that encrypt, decrypt, rewrap, make data keys, sign,
// verify and HMAC for their callers, and never leave the barrier unless
// created exportable.
//
// Key types: aes256-gcm96 (AES-256-GCM, 96-bit random nonce),
// chacha20-poly1305 (96-bit random nonce), ed25519, ecdsa-p256 (ASN.1
// signatures over SHA-256) and hmac (a 32-byte HMAC key). Every version
// of an encryption key also has its own 32-byte HMAC key. A derived key
// (encryption types) encrypts each request under HKDF-SHA256 of the
// version's key with an empty salt and info "metacrypt/transit/derive/v1",
// a zero byte, then the request's context.
//
// Ciphertexts, signatures and HMACs are "metacrypt:v<N>:<base64>": N the
// key version, base64 standard with padding; for ciphertexts the bytes are
// nonce || ciphertext || tag, with the request's associated data as the
// AEAD's additional data, so an exported key decrypts them with any
// AES-GCM or ChaCha20-Poly1305 implementation.
//
// A key's versions are read through the barrier for each request and
// cleared after it. Every operation is authorized here for every entry
// point, as the CA engine does: the mount's ACL rule for the operation on
// "key/<name>" (or "keys" to list), admins bypassing the rules.
//
// Operations (generic operation = typed method; ACL operation):
//
//	create-key     CreateKey        manage
//	get-key        GetKey           read
//	list-keys      ListKeys         read on "keys"
//	update-key     UpdateKeyConfig  manage (min_decryption_version, min_encryption_version, deletion_allowed)
//	rotate-key     RotateKey        manage
//	delete-key     DeleteKey        manage (deletion_allowed must be set first)
//	export-key     ExportKey        export (keys created exportable only)
//	encrypt        Encrypt          encrypt
//	decrypt        Decrypt          decrypt
//	rewrap         Rewrap           rewrap
//	encrypt-batch  EncryptBatch     encrypt
//	decrypt-batch  DecryptBatch     decrypt
//	rewrap-batch   RewrapBatch      rewrap
//	datakey        GenerateDataKey  datakey
//	sign           Sign             sign
//	verify         Verify           verify
//	hmac           HMAC             hmac
//	verify-hmac    VerifyHMAC       verify
//
// read, manage and sign are the policy's shared operations; encrypt,
// decrypt, rewrap, datakey, verify, hmac and export are the transit
// engine's (ACLOperations), which policy.Operations lists too. The typed
// entry point is the gRPC service TransitService (and its REST face). The
// generic request's path may name the key ("key/<name>") instead of the
// data field; byte fields are standard base64.
package transit
