package module

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// File is one payload file: its name in streams/ and files/, and its size
// in bytes.
type File struct {
	Name string
	Size int64
}

// FileSource yields a payload's files in order; Next returns io.EOF after
// the last one. The reader of a file is valid until the next call of Next.
type FileSource interface {
	Next() (File, io.Reader, error)
}

// exitGrace is how long Download waits for a module that broke a pipe to
// exit by itself before it kills it.
const exitGrace = 2 * time.Second

var (
	errNoReader      = errors.New("no reader on the named pipe")
	errModuleExited  = errors.New("update module exited")
	errNeverStreamed = errors.New("update module did not open stream-next")
	errStopped       = errors.New("update module stopped reading")
)

// Download runs the download state: it asks ProvidePayloadFileSizes, then
// runs Download or DownloadWithFileSizes and hands the module the files of
// src, through the streams if the module reads stream-next, or stored under
// files/ if it exits without opening stream-next. It reads src to io.EOF
// before it returns nil. On failure the module is stopped; Mender then runs
// only Cleanup ([Session.Close]), not ArtifactFailure.
func (s *Session) Download(ctx context.Context, src FileSource) error {
	withSizes, err := s.yesNo(ctx, ProvidePayloadFileSizes)
	if err != nil {
		return err
	}
	state := Download
	if withSizes {
		state = DownloadWithFileSizes
	}
	next := filepath.Join(s.tree, "stream-next")
	streams := filepath.Join(s.tree, "streams")
	files := filepath.Join(s.tree, "files")
	for _, p := range []string{next, streams, files} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("update module %q: %s: %w", s.name, state, err)
		}
	}
	if err := mkfifo(next); err != nil {
		return fmt.Errorf("update module %q: %s: %w", s.name, state, err)
	}
	defer os.RemoveAll(streams)
	defer os.Remove(next)

	p, err := s.start(ctx, state, nil)
	if err != nil {
		return err
	}
	// feedCtx ends when the module exits, times out or ctx ends: whatever
	// the feeder waits on or writes then gives up.
	feedCtx, stopFeed := context.WithCancel(p.ctx)
	defer stopFeed()
	go func() {
		<-p.done
		stopFeed()
	}()
	fed := make(chan error, 1)
	go func() { fed <- s.feed(feedCtx, p.done, src, withSizes) }()

	var ferr error
	select {
	case ferr = <-fed:
		if ferr == nil {
			// All files streamed; the module must now exit 0.
			return p.wait()
		}
		aborted := false
		switch {
		case errors.Is(ferr, errModuleExited) || errors.Is(ferr, errStopped) || isBrokenPipe(ferr):
			// The module is going: its exit status says more than
			// the broken pipe, if it comes soon.
			t := time.NewTimer(exitGrace)
			select {
			case <-p.done:
			case <-t.C:
				p.abort()
				aborted = true
			}
			t.Stop()
		case p.ctx.Err() == nil:
			// The source failed: stop the module.
			p.abort()
			aborted = true
		}
		if err := p.wait(); err != nil && !aborted {
			return err
		}
		return fmt.Errorf("update module %q: %s: %w", s.name, state, ferr)
	case <-p.done:
		ferr = <-fed
	}
	if err := p.wait(); err != nil {
		return err
	}
	switch {
	case ferr == nil:
		return nil
	case errors.Is(ferr, errNeverStreamed):
		os.Remove(next)
		os.RemoveAll(streams)
		if err := storeFiles(ctx, files, src); err != nil {
			return fmt.Errorf("update module %q: %s: storing payload files: %w", s.name, state, err)
		}
		return nil
	default:
		return fmt.Errorf("update module %q: %s: %w", s.name, state, ferr)
	}
}

// feed serves stream-next and the streams until src ends, the module exits
// or ctx ends. It returns errNeverStreamed if the module exited without
// opening stream-next.
func (s *Session) feed(ctx context.Context, exited <-chan struct{}, src FileSource, withSizes bool) error {
	next := filepath.Join(s.tree, "stream-next")
	started := false
	for {
		w, err := waitWriter(ctx, exited, next)
		if err != nil {
			if errors.Is(err, errModuleExited) {
				if !started {
					return errNeverStreamed
				}
				return fmt.Errorf("%w before it read the end of stream-next", errModuleExited)
			}
			return err
		}
		started = true
		f, r, err := src.Next()
		if err == io.EOF {
			// Closing without a byte written: the module reads end-of-file.
			w.Close()
			return nil
		}
		if err != nil {
			w.Close()
			return fmt.Errorf("reading payload files: %w", err)
		}
		if err := checkFileName(f.Name); err != nil {
			w.Close()
			return err
		}
		if withSizes && f.Size < 0 {
			w.Close()
			return fmt.Errorf("payload file %q: size unknown", f.Name)
		}
		rel := "streams/" + f.Name
		stream := filepath.Join(s.tree, "streams", f.Name)
		if err := os.MkdirAll(filepath.Dir(stream), 0o700); err != nil {
			w.Close()
			return err
		}
		if err := mkfifo(stream); err != nil {
			w.Close()
			return err
		}
		line := rel
		if withSizes {
			line += " " + strconv.FormatInt(f.Size, 10)
		}
		_, err = writeCtx(ctx, exited, w, []byte(line+"\n"))
		w.Close()
		if err != nil {
			return fmt.Errorf("writing to stream-next: %w", err)
		}
		sw, err := waitWriter(ctx, exited, stream)
		if err != nil {
			if errors.Is(err, errModuleExited) {
				return fmt.Errorf("%w without reading %s", errModuleExited, rel)
			}
			return err
		}
		n, err := copyCtx(ctx, exited, sw, r)
		sw.Close()
		if isBrokenPipe(err) || errors.Is(err, errModuleExited) {
			return fmt.Errorf("%w %s after %d of %d bytes", errStopped, rel, n, f.Size)
		}
		if err != nil {
			return fmt.Errorf("streaming %s: %w", rel, err)
		}
		if f.Size >= 0 && n != f.Size {
			return fmt.Errorf("streaming %s: payload file has %d bytes, want %d", rel, n, f.Size)
		}
	}
}

// waitWriter opens the write end of the named pipe path once the module
// has opened its read end, polling, so that the module's exit or ctx stops
// the wait without a thread stuck in open(2).
func waitWriter(ctx context.Context, exited <-chan struct{}, path string) (*os.File, error) {
	delay := time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		f, err := openFIFOWriter(path)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, errNoReader) {
			return nil, err
		}
		t.Reset(delay)
		select {
		case <-exited:
			return nil, errModuleExited
		case <-ctx.Done():
			return nil, stopCause(ctx, exited)
		case <-t.C:
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}

// stopCause says why ctx ended: the module exited, or the caller's reason.
func stopCause(ctx context.Context, exited <-chan struct{}) error {
	select {
	case <-exited:
		return errModuleExited
	default:
		return context.Cause(ctx)
	}
}

// writeCtx writes b to the pipe w, cut off when ctx ends.
func writeCtx(ctx context.Context, exited <-chan struct{}, w *os.File, b []byte) (int, error) {
	stop := context.AfterFunc(ctx, func() { w.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	n, err := w.Write(b)
	return n, pipeError(ctx, exited, err)
}

// copyCtx copies r into the pipe w, cut off when ctx ends.
func copyCtx(ctx context.Context, exited <-chan struct{}, w *os.File, r io.Reader) (int64, error) {
	stop := context.AfterFunc(ctx, func() { w.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			k, err := w.Write(buf[:m])
			n += int64(k)
			if err != nil {
				return n, pipeError(ctx, exited, err)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("reading payload: %w", rerr)
		}
	}
}

func pipeError(ctx context.Context, exited <-chan struct{}, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		return stopCause(ctx, exited)
	}
	return err
}

// storeFiles writes every file of src into dir, for a module that did not
// stream, and fsyncs them.
func storeFiles(ctx context.Context, dir string, src FileSource) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, r, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading payload files: %w", err)
		}
		if err := checkFileName(f.Name); err != nil {
			return err
		}
		if err := storeFile(ctx, filepath.Join(dir, f.Name), f, r); err != nil {
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

func storeFile(ctx context.Context, name string, f File, r io.Reader) error {
	out, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, ctxReader{ctx, r})
	if err == nil && f.Size >= 0 && n != f.Size {
		err = fmt.Errorf("payload file %q has %d bytes, want %d", f.Name, n, f.Size)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// checkFileName accepts what can be a payload file's name: one path
// component of at most 255 bytes without control characters (a newline
// would break the stream-next protocol).
func checkFileName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 255 {
		return fmt.Errorf("payload file name %q: want a plain file name of 1 to 255 bytes", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '/' || c < 0x20 || c == 0x7f {
			return fmt.Errorf("payload file name %q: want no '/' or control characters", name)
		}
	}
	return nil
}
