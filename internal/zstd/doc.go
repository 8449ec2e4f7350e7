// Package zstd is ferry's single entry point to Zstandard compression.
//
// Bundle payloads are zstd frame streams. Two very different programs
// handle them, and this package gives each what it needs:
//
//   - The host tool (ferry bundle create) compresses, and must do so
//     faster than `rauc bundle` at zstd level 3, with output within 2 % of
//     `zstd -3`. When built with cgo, NewWriter uses libzstd itself through
//     github.com/DataDog/zstd at level 3 with libzstd's own worker threads
//     (ZSTD_c_nbWorkers): the same code and parameters as the zstd CLI, so
//     the output size matches `zstd -3 -T0` and only the cgo and SHA-256
//     overhead separates the wall times. Measured on a 2-core machine,
//     relative to `zstd -3 -T0`: libzstd via cgo + SHA-256 ≈ 1.3×, the
//     pure-Go klauspost/compress encoder at SpeedDefault + SHA-256 ≈ 2.4×,
//     and at SpeedFastest ≈ 1.7× but 9 % larger. Only libzstd meets the
//     target, so it is the host default.
//
//   - Without cgo (CGO_ENABLED=0, or a cross build without a C cross
//     compiler) NewWriter falls back to github.com/klauspost/compress at
//     SpeedDefault. It writes the same format and any decoder reads it; it
//     is just slower. Implementation says which one a binary carries, and
//     `ferry version` prints it.
//
//   - The device agent is built with CGO_ENABLED=0 and only decompresses.
//     NewReader always uses klauspost/compress, configured for hostile
//     input and small devices: one decoding goroutine (no read-ahead
//     buffers), low-memory mode, and frames whose window exceeds MaxWindow
//     are refused before anything is allocated for them.
//
// DataDog/zstd was chosen over valyala/gozstd because it compiles the
// bundled libzstd sources with the ordinary C compiler, so it builds on any
// GOARCH (and cross-builds with a C cross compiler), while gozstd links a
// prebuilt static library shipped for a few platforms only. Its streaming
// Writer exposes SetNbWorkers, which is all the multithreading we need.
//
// Frames carry no xxhash checksum: every payload is verified against its
// SHA-256 digest while it streams, which subsumes it.
package zstd
