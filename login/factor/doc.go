// Package factor holds the credential primitives behind Keystep's sign-in
// factors (DESIGN.md §3.1) and the secrets-at-rest rules of DESIGN.md §6:
// argon2id password hashing, TOTP (RFC 6238), recovery codes (NIST SP 800-63B
// look-up secrets), WebAuthn credentials (passkeys and security keys: the
// relying party, the stored credential and its flags), opaque tokens and
// their storage hashes, and AES-256-GCM sealing with the master key.
//
// The package does no HTTP and no storage I/O (it reads and builds
// storage's types, never calls a store), and never reads the clock: every
// time-dependent function takes the time as an argument. Single-use rules
// (a TOTP step or a recovery code accepted once) are enforced by storage; this
// package returns what storage needs to enforce them (the matched step, the
// code hash).
package factor
