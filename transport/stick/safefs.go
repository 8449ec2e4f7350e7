package stick

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"syscall"
)

// ErrNotRegular is wrapped by the error of opening a file on a stick that
// is not a regular file (a FIFO, a device, a socket): nothing on a stick
// may make the agent block or read a device.
var ErrNotRegular = errors.New("not a regular file")

// stickFS reads a stick's files as hostile input: every open stays inside
// the stick (a symbolic link that leads out of it is refused, see
// os.Root), never blocks (O_NONBLOCK, so a FIFO cannot hang the agent),
// and yields only regular files and directories. No descriptor stays open
// between calls, so the stick can be unmounted at any time.
type stickFS struct {
	root string // the stick's mount point
	dir  string // the directory inside it, "ferry"
}

// DirFS reads the directory root (a mounted stick, a copy of one or a
// part of it) as a stick's files are read: as hostile input, see stickFS.
func DirFS(root string) fs.FS { return stickFS{root: root, dir: "."} }

func (s stickFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	r, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	f, err := r.OpenFile(path.Join(s.dir, name), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w (%s)", ErrNotRegular, fileType(fi.Mode()))}
	}
	return f, nil
}

func fileType(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsRegular():
		return "a regular file"
	}
	return m.Type().String()
}

// ReadFile reads a regular file of at most max bytes at name, a path
// inside the layout (a stick's ferry/ directory), as hostile input (see
// Layout).
func (l *Layout) ReadFile(name string, max int64) ([]byte, error) {
	b, err := ReadFile(l.fsys, name, max)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	return b, nil
}

// ReadDir lists a directory inside the layout (a stick's ferry/
// directory); a missing one is empty.
func (l *Layout) ReadDir(name string) ([]fs.DirEntry, error) {
	ents, err := fs.ReadDir(l.fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	return ents, nil
}
