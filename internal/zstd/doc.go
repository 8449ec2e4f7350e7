// Package zstd is ferry's single entry point to Zstandard compression.
//
// Bundle payloads are zstd frame streams. Two very different programs
// handle them, and this package gives each what it needs.
//
// The host tool (ferry bundle create) compresses. It must be faster than
// `rauc bundle` at zstd level 3, with output within 2 % of `zstd -3`. When
// built with cgo, NewWriter runs libzstd itself through
// github.com/DataDog/zstd, at level 3 with libzstd's own worker threads
// (ZSTD_c_nbWorkers). This is the code and the parameters the zstd CLI
// uses, so the output is the size of `zstd -3 -T0`, and the two are about
// as fast. DataDog/zstd links libzstd's C sources, but we drive
// ZSTD_compressStream2 through a few lines of our own cgo (writer_cgo.go):
// the binding's Writer neither sets ZSTD_c_jobSize nor keeps a fixed output
// buffer, and with libzstd's default 8 MiB jobs create peaked at 104 MiB
// RSS on a 1 GiB image (137 MiB on 4 GiB); with 4 MiB jobs and one 4 MiB
// output buffer it stays at about 55 MiB, flat, for 0.5 % more output.
//
// klauspost/compress at SpeedDefault costs about as much CPU per byte as
// libzstd at level 3, and its output is about as small or smaller. But its
// streaming encoder compresses on one goroutine, so on a multi-core host it
// loses on wall time: measured on 2 cores, with SHA-256, it took about 2.4×
// as long as `zstd -3 -T0`. Its SpeedFastest took 1.7× as long, with 9 %
// larger output. libzstd via cgo took 1.3× as long. The parallel
// WithConcurrentBlocks mode of klauspost/compress v1.20 used 45 % more CPU
// and about 580 MiB of RSS. So libzstd is the default on the host, and
// klauspost/compress is the fallback when cgo is off (CGO_ENABLED=0, or a
// cross build without a C cross compiler). Both write the same format, and
// every decoder reads either. Implementation reports which one a binary
// has, and `ferry version` prints it.
//
// We use DataDog/zstd and not valyala/gozstd because DataDog compiles the
// libzstd sources it bundles with the ordinary C compiler. It therefore
// builds on every GOARCH, and cross-builds given a C cross compiler
// (CC=aarch64-linux-gnu-gcc). gozstd links prebuilt static libraries shipped
// inside its module for a fixed list of platforms (none for riscv64 or
// 386, for example), and those are binaries nobody here can review.
//
// The device agent is built with CGO_ENABLED=0 and only decompresses.
// NewReader always uses klauspost/compress, set up for hostile input and
// small devices:
//   - it decodes on one goroutine, with no read-ahead buffers;
//   - it runs in low-memory mode;
//   - it refuses frames whose window exceeds MaxWindow before it allocates
//     anything for them;
//   - it never decodes a whole in-memory buffer at once.
//
// Frames carry no xxhash checksum. Every payload is checked against its
// SHA-256 digest while it streams, which covers more than the checksum
// would.
package zstd
