// Package verifyio checks untrusted streams while they are read: every byte
// that ferry takes from a bundle, a registry blob or a stick passes through a
// Reader that hashes it, refuses to read past the size the signed metadata
// promised, and fails at EOF when the digest or the size is not the one
// expected. Callers never act on data before Read has returned io.EOF.
package verifyio
