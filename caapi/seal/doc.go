// Package seal makes encrypted capsules: record payloads sealed with a
// content key (XChaCha20-Poly1305), the content key wrapped for each
// authorised reader, readers named by a signed key record in the capsule
// itself, and a new content key (a new epoch) whenever a reader is removed.
//
// Servers and routers never see a content key or plaintext; they store
// and serve sealed records like any other, and verify the hash chain,
// Merkle proofs and heartbeats over the ciphertext as they always do (the
// record hash covers the ciphertext's SHA-256). What they still see is in
// docs/SECURITY.md §2.7: sizes, timing, the epoch of each record and the
// public keys of the readers.
//
// Reader keys are the readers' Ed25519 identity keys, converted to X25519
// (the birational map of RFC 7748 §4.1 for the public key, the hashed seed
// for the private key, as libsodium's crypto_sign_ed25519_*_to_curve25519
// do): a reader needs no key beyond the identity it already has.
//
// Formats: docs/PROTOCOL.md §11.
package seal
