//go:build cgo

package zstd

/*
#include <stddef.h>

// libzstd's stable API, compiled into this binary by github.com/DataDog/zstd
// (or taken from the system library with its external_libzstd tag), so
// declaring it is enough; its header need not be on our include path. The
// parameter numbers are zstd.h's ZSTD_cParameter and ZSTD_EndDirective
// values, fixed since libzstd 1.4.0.
typedef struct ZSTD_CCtx_s ZSTD_CCtx;
typedef struct { const void *src; size_t size; size_t pos; } ZSTD_inBuffer;
typedef struct { void *dst; size_t size; size_t pos; } ZSTD_outBuffer;
unsigned ZSTD_versionNumber(void);
ZSTD_CCtx *ZSTD_createCCtx(void);
size_t ZSTD_freeCCtx(ZSTD_CCtx *cctx);
size_t ZSTD_CCtx_setParameter(ZSTD_CCtx *cctx, int param, int value);
size_t ZSTD_compressStream2(ZSTD_CCtx *cctx, ZSTD_outBuffer *out, ZSTD_inBuffer *in, int endOp);
unsigned ZSTD_isError(size_t code);
const char *ZSTD_getErrorName(size_t code);

enum {
	ferry_c_compressionLevel = 100,
	ferry_c_nbWorkers = 400,
	ferry_c_jobSize = 401,
	ferry_e_continue = 0,
	ferry_e_end = 2,
};

// ferry_compress runs one ZSTD_compressStream2 step. The buffers are built
// here so that Go passes only plain pointers (cgo forbids Go memory that
// holds Go pointers); libzstd keeps neither pointer after it returns.
static size_t ferry_compress(ZSTD_CCtx *cctx, void *dst, size_t dstSize, size_t *written,
		const void *src, size_t srcSize, size_t *consumed, int endOp) {
	ZSTD_outBuffer out = { dst, dstSize, 0 };
	ZSTD_inBuffer in = { src, srcSize, 0 };
	size_t ret = ZSTD_compressStream2(cctx, &out, &in, endOp);
	*written = out.pos;
	*consumed = in.pos;
	return ret;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"unsafe"

	// Links libzstd's C code, which the declarations above call.
	_ "github.com/DataDog/zstd"
)

// jobSize is the input of one libzstd worker job. At level 3 libzstd's
// default is 8 MiB, and its multithreaded compressor keeps (workers + 3)
// jobs of input and up to 2 × workers + 3 compressed job buffers: with 2
// workers create peaked at 104 MiB RSS on a 1 GiB image and 114 MiB on a
// 4 GiB one. 4 MiB jobs cost 0.5 % of output size. The job size, not the
// worker count, decides the output, so bundles stay byte-identical on
// hosts with any number of CPUs.
const jobSize = 4 << 20

// outSize is libzstd's output window per call: one whole job, so that a
// finished job's buffer is handed back in one call and not held while we
// drain it in pieces (256 KiB here kept 15 MiB more resident).
const outSize = jobSize

func implementation() string {
	v := uint(C.ZSTD_versionNumber())
	return fmt.Sprintf("libzstd %d.%d.%d (cgo)", v/10000, v/100%100, v%100)
}

func newWriter(w io.Writer, workers int) (io.WriteCloser, error) {
	ctx := C.ZSTD_createCCtx()
	if ctx == nil {
		return nil, errors.New("creating zstd writer: out of memory")
	}
	cw := &cWriter{ctx: ctx, w: w, out: make([]byte, outSize)}
	// libzstd's nbWorkers=1 already moves compression to one background
	// thread, overlapping it with our I/O, as the CLI's -T1 does.
	for _, p := range []struct {
		name  string
		param C.int
		value int
	}{
		{"level", C.ferry_c_compressionLevel, Level},
		{"workers", C.ferry_c_nbWorkers, workers},
		{"job size", C.ferry_c_jobSize, jobSize},
	} {
		if err := zstdError(C.ZSTD_CCtx_setParameter(ctx, p.param, C.int(p.value))); err != nil {
			C.ZSTD_freeCCtx(ctx)
			return nil, fmt.Errorf("creating zstd writer: %s %d: %w", p.name, p.value, err)
		}
	}
	return cw, nil
}

var errClosed = errors.New("zstd: write after Close")

// cWriter streams into a libzstd context, writing its output to w in
// outSize pieces.
type cWriter struct {
	ctx      *C.ZSTD_CCtx
	w        io.Writer
	out      []byte
	err      error // first error, sticky
	closed   bool
	closeErr error
}

func zstdError(code C.size_t) error {
	if C.ZSTD_isError(code) == 0 {
		return nil
	}
	return errors.New(C.GoString(C.ZSTD_getErrorName(code)))
}

// step feeds p to libzstd once and writes whatever output it produced. It
// returns how much of p was consumed and libzstd's hint (0 when a frame
// end is fully flushed).
func (cw *cWriter) step(p []byte, end C.int) (int, C.size_t, error) {
	var src unsafe.Pointer
	if len(p) > 0 {
		src = unsafe.Pointer(&p[0])
	}
	var written, consumed C.size_t
	ret := C.ferry_compress(cw.ctx, unsafe.Pointer(&cw.out[0]), C.size_t(len(cw.out)), &written,
		src, C.size_t(len(p)), &consumed, end)
	if err := zstdError(ret); err != nil {
		return 0, 0, fmt.Errorf("compressing zstd stream: %w", err)
	}
	if written > 0 {
		if _, err := cw.w.Write(cw.out[:written]); err != nil {
			return 0, 0, err
		}
	}
	return int(consumed), ret, nil
}

func (cw *cWriter) Write(p []byte) (int, error) {
	if cw.closed {
		return 0, errClosed
	}
	if cw.err != nil {
		return 0, cw.err
	}
	n := 0
	for n < len(p) {
		c, _, err := cw.step(p[n:], C.ferry_e_continue)
		n += c
		if err != nil {
			cw.err = err
			return n, err
		}
	}
	return n, nil
}

// Close ends the frame, writes the rest of the output and frees libzstd's
// context. It does not close the underlying writer.
func (cw *cWriter) Close() error {
	if cw.closed {
		return cw.closeErr
	}
	cw.closed = true
	for cw.err == nil {
		_, left, err := cw.step(nil, C.ferry_e_end)
		if err != nil {
			cw.err = err
		} else if left == 0 {
			break
		}
	}
	C.ZSTD_freeCCtx(cw.ctx)
	cw.ctx = nil
	cw.out = nil
	if cw.err != nil {
		cw.closeErr = cw.err
	}
	return cw.closeErr
}
