package filekind

import (
	"bytes"
	"io"
)

// readerHead is how much of a stream NewReader looks at: enough for a tar
// header, a partition table, an ext4 superblock or the start of a page.
const readerHead = 4096

// NewReader returns a reader of r's bytes that fails with an *Error, before
// handing over anything, when r's first bytes are of a known kind other
// than want. fromURL marks the Error as coming from an http(s) URL.
func NewReader(r io.Reader, want Kind, fromURL bool) io.Reader {
	return &guard{r: r, want: want, fromURL: fromURL}
}

type guard struct {
	r       io.Reader
	want    Kind
	fromURL bool
	checked bool
	head    io.Reader
}

func (g *guard) Read(p []byte) (int, error) {
	if !g.checked {
		g.checked = true
		buf := make([]byte, readerHead)
		n, err := io.ReadFull(g.r, buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return 0, err
		}
		buf = buf[:n]
		if got := Detect(buf); mismatch(got, g.want) {
			return 0, &Error{Got: got, Want: g.want, URL: g.fromURL}
		}
		g.head = bytes.NewReader(buf)
	}
	if g.head != nil {
		n, err := g.head.Read(p)
		if err == io.EOF {
			g.head = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	return g.r.Read(p)
}
