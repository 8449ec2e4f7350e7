package display

import (
	"bytes"
	"io"
	"sync"
	"time"
)

// maxLogLine is how much of a line without its end LogWriter holds back;
// a longer one is written as a line of its own.
const maxLogLine = 64 << 10

// LogWriter writes a log to W line by line, each line escaped with
// UntrustedLines (a log quotes bundle names, servers' errors and the
// output of health checks) and, when Now is set, stamped with the time in
// UTC as RFC 3339 and a space. Use NewLog. It is safe for concurrent use;
// Flush writes a last line that has no newline yet.
type LogWriter struct {
	W   io.Writer
	Now func() time.Time // nil: no time stamps

	mu  sync.Mutex
	buf []byte
}

// NewLog returns the LogWriter for a program's log on w: time-stamped
// unless w is a terminal, where a person watches it as it happens, or
// systemd's journal, which stamps lines itself. A log file, a pipe or a
// serial console capture on a device without journald needs the times.
func NewLog(w io.Writer) *LogWriter {
	l := &LogWriter{W: w}
	if !IsTerminal(w) && !isJournal(w) {
		l.Now = time.Now
	}
	return l
}

// Write implements io.Writer. Whole lines are written at once; the rest
// waits for its newline or Flush.
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 && len(l.buf) < maxLogLine {
			return len(p), nil
		}
		if i < 0 {
			i = len(l.buf) - 1
		}
		line := l.buf[:i+1]
		if err := l.writeLine(line); err != nil {
			return len(p), err
		}
		l.buf = l.buf[len(line):]
	}
}

// Flush writes what is held back of a line without its newline, ending it.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) == 0 {
		return nil
	}
	err := l.writeLine(l.buf)
	l.buf = l.buf[:0]
	return err
}

// writeLine writes one line (with or without its newline) and a newline.
func (l *LogWriter) writeLine(line []byte) error {
	text := UntrustedLines(string(bytes.TrimSuffix(line, []byte("\n"))))
	if l.Now != nil {
		text = Time(l.Now()) + " " + text
	}
	_, err := io.WriteString(l.W, text+"\n")
	return err
}
