package display

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// IsTerminal reports whether f is an *os.File on a terminal. Progress
// bars and prompts appear only there, so logs and pipes stay clean.
func IsTerminal(f any) bool {
	file, ok := f.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}

// Progress draws a byte-count bar on w when w is a terminal. It returns a
// callback taking the running total (nil when there is no terminal, so
// callers can pass it on as an optional hook) and a function to finish
// the bar. total < 0 draws a spinner.
func Progress(w io.Writer, total int64, what string) (update func(done int64), finish func()) {
	if !IsTerminal(w) {
		return nil, func() {}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100e6),
		progressbar.OptionClearOnFinish(),
	)
	var last int64
	return func(n int64) { bar.Add64(n - last); last = n }, func() { bar.Finish() }
}

// CountingReader calls Update with the running byte count as it reads.
type CountingReader struct {
	R      io.Reader
	Update func(done int64)
	n      int64
}

// Read implements io.Reader.
func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.n += int64(n)
	if c.Update != nil && n > 0 {
		c.Update(c.n)
	}
	return n, err
}
