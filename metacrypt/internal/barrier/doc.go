// Package barrier is Metacrypt's key hierarchy and the encryption of
// everything it stores. The unseal password gives the key-encryption key
// (package seal); it unwraps the master key (MEK); the MEK unwraps one
// data key (DEK) per owner (each mount, and "sys" for the policy); a DEK
// encrypts its owner's values with AES-256-GCM, the row's identity
// (owner, kind, key) being the additional data, so a ciphertext moved to
// another row does not decrypt. Only the barrier holds key material:
// Seal zeroizes the MEK and every DEK, and every operation needing them
// fails with engine.ErrSealed until the next Unseal.
package barrier
