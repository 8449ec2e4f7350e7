package module

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// outputGrace is how long a call waits, after the module exited, for the
// rest of its output. A module may leave a daemon behind that holds the
// pipes open; its output is then drained and dropped, never cut off (a
// closed pipe could kill the daemon with SIGPIPE).
const outputGrace = time.Second

// proc is one running call of a module.
type proc struct {
	s      *Session
	state  string
	cmd    *exec.Cmd
	ctx    context.Context // ends at the timeout or with the caller's context
	cancel context.CancelFunc
	done   chan struct{} // closed when the process has exited
	err    error         // the result of cmd.Wait, set before done closes
	outs   []*drain
	logs   []*lineLog
	stderr *lineLog
}

// start runs the module with state. Standard output goes to stdout if it is
// not nil, to the log otherwise; standard error goes to the log.
func (s *Session) start(ctx context.Context, state string, stdout io.Writer) (*proc, error) {
	pctx, cancel := context.WithTimeoutCause(ctx, s.r.timeout(), ErrTimeout)
	cmd := exec.CommandContext(pctx, s.module, state, s.tree)
	cmd.Dir = s.tree
	setProcAttr(cmd)
	p := &proc{s: s, state: state, cmd: cmd, ctx: pctx, cancel: cancel, done: make(chan struct{})}

	prefix := fmt.Sprintf("module %s %s: ", s.name, state)
	p.stderr = &lineLog{r: s.r, prefix: prefix + "stderr: "}
	p.logs = append(p.logs, p.stderr)
	if stdout == nil {
		l := &lineLog{r: s.r, prefix: prefix + "stdout: "}
		p.logs = append(p.logs, l)
		stdout = l
	}
	var parentEnds []*os.File
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			f.Close()
		}
	}
	for i, w := range []io.Writer{stdout, p.stderr} {
		pr, pw, err := os.Pipe()
		if err != nil {
			cancel()
			closeAll(parentEnds)
			return nil, fmt.Errorf("update module %q: %s: %w", s.name, state, err)
		}
		parentEnds = append(parentEnds, pr, pw)
		if i == 0 {
			cmd.Stdout = pw
		} else {
			cmd.Stderr = pw
		}
		p.outs = append(p.outs, &drain{r: pr, w: w, done: make(chan struct{})})
	}
	if err := cmd.Start(); err != nil {
		cancel()
		closeAll(parentEnds)
		return nil, fmt.Errorf("update module %q: %s: starting %s: %w", s.name, state, s.module, err)
	}
	// The child has its copies of the write ends; ours must go, or the
	// drains would never see end-of-file.
	cmd.Stdout.(*os.File).Close()
	cmd.Stderr.(*os.File).Close()
	for _, d := range p.outs {
		go d.run()
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// abort kills the module's process group.
func (p *proc) abort() { p.cancel() }

// wait waits for the module to exit and for its output, and returns the
// call's error: nil for exit 0.
func (p *proc) wait() error {
	<-p.done
	timedOut := context.Cause(p.ctx)
	p.cancel()
	grace := time.NewTimer(outputGrace)
	defer grace.Stop()
	for _, d := range p.outs {
		select {
		case <-d.done:
		case <-grace.C:
			grace.Reset(0)
		}
		d.detach()
	}
	for _, l := range p.logs {
		l.flush()
	}
	err := p.err
	if err == nil {
		return nil
	}
	if timedOut != nil {
		// Killed by us: say why rather than "signal: killed".
		if errors.Is(timedOut, ErrTimeout) {
			err = fmt.Errorf("%w after %s", ErrTimeout, p.s.r.timeout())
		} else {
			err = timedOut
		}
	}
	msg := ""
	if t := p.stderr.lastLine(); t != "" {
		msg = ": " + t
	}
	return fmt.Errorf("update module %q: %s: %w%s", p.s.name, p.state, err, msg)
}

// call runs state to its end.
func (s *Session) call(ctx context.Context, state string, stdout io.Writer) error {
	if fi, err := os.Stat(s.tree); err != nil || !fi.IsDir() {
		if state == Cleanup {
			return nil
		}
		return fmt.Errorf("update module %q: %s: file tree %s does not exist", s.name, state, s.tree)
	}
	p, err := s.start(ctx, state, stdout)
	if err != nil {
		return err
	}
	return p.wait()
}

// drain copies one output pipe of a module into a writer until end-of-file
// or until detached; after detach the rest is read and dropped.
type drain struct {
	r    *os.File
	done chan struct{}

	mu       sync.Mutex
	w        io.Writer
	detached bool
}

func (d *drain) run() {
	defer close(d.done)
	defer d.r.Close()
	buf := make([]byte, 4096)
	for {
		n, err := d.r.Read(buf)
		if n > 0 {
			d.mu.Lock()
			if !d.detached {
				d.w.Write(buf[:n])
			}
			d.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (d *drain) detach() {
	d.mu.Lock()
	d.detached = true
	d.mu.Unlock()
}

// capBuffer keeps the first MaxLogOutput bytes written to it.
type capBuffer struct {
	b       []byte
	dropped bool
}

func (c *capBuffer) Write(p []byte) (int, error) {
	room := MaxLogOutput - len(c.b)
	if len(p) > room {
		c.dropped = true
		c.b = append(c.b, p[:room]...)
	} else {
		c.b = append(c.b, p...)
	}
	return len(p), nil
}

// lineLog writes a module's output to the runner's log one prefixed line at
// a time, at most MaxLogOutput bytes, and remembers the last line.
type lineLog struct {
	r       *Runner
	prefix  string
	buf     []byte
	logged  int
	dropped int64
	last    string
}

const maxLine = 4096

func (l *lineLog) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.buf = append(l.buf, p...)
			if len(l.buf) >= maxLine {
				l.emit()
			}
			break
		}
		l.buf = append(l.buf, p[:i]...)
		l.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (l *lineLog) emit() {
	line := strings.TrimRight(string(l.buf), "\r")
	l.buf = l.buf[:0]
	if t := strings.TrimSpace(line); t != "" {
		l.last = t
	}
	if l.logged+len(line) > MaxLogOutput {
		l.dropped += int64(len(line)) + 1
		return
	}
	l.logged += len(line) + 1
	if l.r.Log == nil {
		return
	}
	l.r.logMu.Lock()
	fmt.Fprintf(l.r.Log, "%s%s\n", l.prefix, line)
	l.r.logMu.Unlock()
}

func (l *lineLog) flush() {
	if len(l.buf) > 0 {
		l.emit()
	}
	if l.dropped > 0 && l.r.Log != nil {
		l.r.logMu.Lock()
		fmt.Fprintf(l.r.Log, "%s(%d more bytes not logged)\n", l.prefix, l.dropped)
		l.r.logMu.Unlock()
		l.dropped = 0
	}
}

// lastLine is the last non-blank line, shortened, for error messages.
func (l *lineLog) lastLine() string {
	const max = 200
	if len(l.last) > max {
		return l.last[:max] + "..."
	}
	return l.last
}
