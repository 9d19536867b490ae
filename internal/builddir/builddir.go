// Package builddir guards a project's .build/ directory, everything ov
// writes: a lock that the commands writing it hold (so two runs never leave
// a mix of their files), a sweep of the temporary files a killed run left,
// and writes and reads that never follow a symbolic link at or below .build/
// (a committed link would otherwise send generated files, or the removal of
// stale ones, wherever it points).
package builddir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// Dir is the directory, relative to the project, that ov owns.
const Dir = ".build"

// ExportStore is ov's export store (export.Store: layers as BuildKit sent
// them, and as ov encoded them), relative to the project.
const ExportStore = Dir + "/blobs"

// MaxRead bounds what ReadFile reads: ov's own files are far smaller.
const MaxRead = 64 << 20

// LinkError is a symbolic link (or another non-directory) where ov needs
// a directory or a regular file of its own.
type LinkError struct {
	Rel  string // project-relative path
	What string // what it is instead
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("%s is %s: ov does not write through it (remove it and run again)", e.Rel, e.What)
}

// kind names a file mode for LinkError.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	}
	return "a special file"
}

// check verifies that rel (slash-separated, under Dir) and every directory
// above it up to Dir are real directories where they exist; the last
// component must be a directory too when dir is set. It returns the
// components that do not exist yet (from the first missing one).
func check(project, rel string, dir bool) (missing []string, err error) {
	parts := strings.Split(rel, "/")
	if parts[0] != Dir || slices.ContainsFunc(parts, func(p string) bool { return p == "" || p == "." || p == ".." }) {
		return nil, fmt.Errorf("builddir: %q is not under %s/", rel, Dir)
	}
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		fi, err := os.Lstat(filepath.Join(project, filepath.FromSlash(sub)))
		if errors.Is(err, fs.ErrNotExist) {
			return parts[i:], nil
		}
		if err != nil {
			return nil, err
		}
		last := i == len(parts)-1
		if fi.IsDir() {
			if last && !dir {
				return nil, &LinkError{Rel: sub, What: "a directory"}
			}
			continue
		}
		if !last || dir || !fi.Mode().IsRegular() {
			return nil, &LinkError{Rel: sub, What: kind(fi.Mode())}
		}
	}
	return nil, nil
}

// Check reports an error when rel (a directory under .build/, relative to
// the project) or a directory above it is a symbolic link or not a
// directory. Missing directories are fine.
func Check(project, rel string) error {
	_, err := check(project, rel, true)
	return err
}

// MkdirAll creates directory rel under .build/ and the directories above
// it, refusing symbolic links on the way (the project directory itself is
// the caller's choice: made when missing, links followed).
func MkdirAll(project, rel string) error {
	missing, err := check(project, rel, true)
	if err != nil {
		return err
	}
	if len(missing) > 0 && missing[0] == Dir {
		if err := os.MkdirAll(project, 0o755); err != nil {
			return err
		}
	}
	if len(missing) == 0 {
		return nil
	}
	have := strings.TrimSuffix(strings.TrimSuffix(rel, strings.Join(missing, "/")), "/")
	for _, m := range missing {
		if have == "" {
			have = m
		} else {
			have += "/" + m
		}
		if err := os.Mkdir(filepath.Join(project, filepath.FromSlash(have)), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	// A directory made by someone else between the check and Mkdir may be
	// a link: check again.
	_, err = check(project, rel, true)
	return err
}

// WriteFile replaces rel (under .build/) with data atomically: a temporary
// file in the same directory renamed over it, so readers see the old or the
// new content, never a mix. An identical regular file is left alone; a
// symbolic link at rel is replaced, never followed. There is no fsync: the
// rename is what readers need, and the next run rewrites any file a crash
// lost.
func WriteFile(project, rel string, data []byte) error {
	return NewWriter(project).WriteFile(rel, data)
}

// A Writer is WriteFile for many files: it checks (and makes) each
// directory once, not once per file. Safe for concurrent use.
type Writer struct {
	project string
	dirs    sync.Map // directories MkdirAll made or found, relative
}

// NewWriter writes under project's .build/.
func NewWriter(project string) *Writer { return &Writer{project: project} }

// WriteFile is WriteFile.
func (w *Writer) WriteFile(rel string, data []byte) error {
	dir := pathDir(rel)
	if _, ok := w.dirs.Load(dir); !ok {
		if err := MkdirAll(w.project, dir); err != nil {
			return err
		}
		w.dirs.Store(dir, true)
	}
	return replace(w.project, rel, data)
}

// replace is WriteFile once rel's directories are checked.
func replace(project, rel string, data []byte) error {
	file := filepath.Join(project, filepath.FromSlash(rel))
	if holds(project, rel, data) {
		return nil
	}
	// The temporary name neither ends in .conf nor looks like an output.
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Chmod(0o644)
	if err := errors.Join(werr, cerr, f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", rel, err)
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", rel, err)
	}
	return nil
}

func pathDir(rel string) string {
	if i := strings.LastIndex(rel, "/"); i >= 0 {
		return rel[:i]
	}
	return rel
}

// holds reports whether rel (its directories checked) is a regular file
// holding exactly data: the size first, then the bytes, read at once.
func holds(project, rel string, data []byte) bool {
	f, fi, err := openRegular(project, rel)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi.Size() != int64(len(data)) {
		return false
	}
	buf := make([]byte, len(data)+1) // +1: the file has not grown since
	n, err := io.ReadFull(f, buf)
	return n == len(data) && (err == io.EOF || err == io.ErrUnexpectedEOF) && bytes.Equal(buf[:n], data)
}

// Open opens rel (under .build/) for reading when it is a regular file
// reached without a symbolic link (a FIFO does not block it).
func Open(project, rel string) (*os.File, error) {
	if _, err := check(project, rel, false); err != nil {
		return nil, err
	}
	f, _, err := openRegular(project, rel)
	return f, err
}

// openRegular is Open without checking the directories above rel: a link
// at rel itself is not followed.
func openRegular(project, rel string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(filepath.Join(project, filepath.FromSlash(rel)), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &LinkError{Rel: rel, What: kind(fi.Mode())}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// ReadFile reads rel (under .build/) when Open allows it and it is at most
// MaxRead bytes long.
func ReadFile(project, rel string) ([]byte, error) {
	f, err := Open(project, rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAllMax(f, MaxRead, rel)
}

// ReadAllMax reads r to the end, failing with an error naming what when
// it holds more than max bytes.
func ReadAllMax(r io.Reader, max int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d MiB: refusing to read it", what, max>>20)
	}
	return b, nil
}
