package spec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// MaxFileSize bounds every project file ov reads whole (images.yml,
// layer.yml, Taskfiles, templates): the largest real ones are a few KiB.
const MaxFileSize = 4 << 20

// HeaderFile is the project file whose content leads the supervisord
// config (read at generate time; Load checks it can be).
const HeaderFile = "templates/supervisord.header.conf"

// projectFS reads a project through an os.Root, so that no path, however
// linked, reaches outside the project, and refuses to read a file larger
// than MaxFileSize. Its failures for those reasons are *FileError.
type projectFS struct{ fsys fs.FS }

// FileError is a project file ov refuses to read: one that resolves
// outside the project through a symbolic link, or is too large.
type FileError struct {
	Rel string // project-relative path
	Msg string
}

func (e *FileError) Error() string { return e.Rel + ": " + e.Msg }

// Spec converts e into the project error it is.
func (e *FileError) Spec() *Error { return &Error{Pos: Pos{File: e.Rel}, Msg: e.Msg} }

// escapesRoot reports whether err is os.Root refusing a path that leaves
// it (the error is not exported).
func escapesRoot(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent"
}

func (p projectFS) conv(name string, err error) error {
	if err != nil && escapesRoot(err) {
		return &FileError{Rel: name, Msg: "resolves to outside the project through a symbolic link: ov reads only files inside the project"}
	}
	return err
}

func (p projectFS) Open(name string) (fs.File, error) {
	f, err := p.fsys.Open(name)
	return f, p.conv(name, err)
}

func (p projectFS) Stat(name string) (fs.FileInfo, error) {
	fi, err := fs.Stat(p.fsys, name)
	return fi, p.conv(name, err)
}

func (p projectFS) ReadDir(name string) ([]fs.DirEntry, error) {
	es, err := fs.ReadDir(p.fsys, name)
	return es, p.conv(name, err)
}

func (p projectFS) ReadFile(name string) ([]byte, error) {
	f, err := p.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readMax(f, name)
}

// readMax reads r (the file rel) whole, up to MaxFileSize.
func readMax(r io.Reader, rel string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, &FileError{Rel: rel, Msg: fmt.Sprintf("larger than %d MiB: not read", MaxFileSize>>20)}
	}
	return b, nil
}

// ReadProjectFile reads the file rel of the project in dir as Load reads
// project files: nothing outside the project, nothing larger than
// MaxFileSize (both *FileError).
func ReadProjectFile(dir, rel string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return fs.ReadFile(projectFS{root.FS()}, rel)
}
