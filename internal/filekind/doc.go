// Package filekind tells what a file is from its first bytes, so that a
// command given the wrong kind of input can say what it got and what to
// pass instead ("this is a GPT disk image, not a ferry bundle"), rather
// than failing somewhere in a parser ("bundle is truncated").
//
// Detect knows the inputs ferry users mix up: bundles (OCI archives), disk
// images (GPT or MBR: stick images), filesystem images (FAT, ext2/3/4,
// squashfs), PEM public and private keys, the ferry trust root
// (verify/TRUST.md), the mirror's TUF root and other TUF metadata, HTML
// pages and other JSON. It reads at most HeadSize bytes and never
// decides trust: a file it calls a bundle may still be refused.
//
// Error is returned by the packages that take a file of one kind and were
// given another; ferry and ferry-agent pick their hint by errors.As and
// Error.Hint.
package filekind
