// Package atomicfile replaces files so that a power cut leaves either the
// old content or the complete new one, never a mix: write a temporary file
// beside the target (rename is atomic only within one filesystem), fsync
// it, rename it over the target, and fsync the directory so that the rename
// itself survives. Every durable write in ferry goes through here.
package atomicfile
