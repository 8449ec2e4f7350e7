package registry

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/ferry-update/ferry/bundle"
	"github.com/ferry-update/ferry/internal/atomicfile"
)

// PullFile pulls the bundle ref names (see Pull) into the file path. The
// bundle is written to a temporary file beside path (mode 0644 less the
// umask), read back as a bundle, and only then renamed into place, so
// path never holds a partial or unreadable bundle. o.Progress, if set, is
// called with the number of bytes written so far.
func PullFile(ctx context.Context, ref, path string, o Options) (*PullResult, error) {
	tmp, err := atomicfile.CreateTempPerm(path, 0o644)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	res, err := Pull(ctx, ref, &progressWriter{w: w, progress: o.Progress}, o)
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return res, err
	}
	// Refuse a result that does not read back as a bundle.
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return res, err
	}
	br, err := bundle.NewReader(bufio.NewReader(tmp))
	if err != nil {
		return res, fmt.Errorf("pull %s: the result does not read as a bundle: %w", ref, err)
	}
	br.Close()
	committed = true
	if err := atomicfile.Commit(tmp, path); err != nil {
		return res, fmt.Errorf("pull %s: %w", ref, err)
	}
	return res, nil
}

// progressWriter reports how many bytes went through it.
type progressWriter struct {
	w        io.Writer
	n        int64
	progress func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.progress != nil {
		p.progress(p.n)
	}
	return n, err
}
