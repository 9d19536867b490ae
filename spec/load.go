package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Load reads the project in dir: images.yml and every layers/<name>/. It
// resolves inheritance, layer order and image order and checks every rule,
// collecting all problems. User errors come back as Errors (use errors.As);
// any other error is an internal one (I/O), not the user's.
//
// Files are read through an os.Root: a symbolic link leading outside the
// project is an error naming it, as is a file larger than MaxFileSize.
func Load(dir string) (*Project, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) || err == nil && !fi.IsDir() {
		return nil, Errors{{Msg: fmt.Sprintf("%s is not a project directory (pass -C a directory holding images.yml)", dir)}}
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return load(projectFS{root.FS()}, abs)
}

// ioError turns a failure to read rel into the project error it is when
// the project is at fault (a link to outside, a file too large, a
// directory where a file belongs or the reverse); other failures are
// internal.
func ioError(rel string, err error) error {
	var fe *FileError
	if errors.As(err, &fe) {
		return Errors{fe.Spec()}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && rel == "" {
		rel = pe.Path
	}
	switch {
	case errors.Is(err, syscall.EISDIR):
		return Errors{{Pos: Pos{File: rel}, Msg: "is a directory, not a file"}}
	case errors.Is(err, syscall.ENOTDIR):
		return Errors{{Pos: Pos{File: rel}, Msg: "is not a directory"}}
	}
	return fmt.Errorf("reading %s: %w", rel, err)
}

// loader holds the state of one Load.
type loader struct {
	fsys     fs.FS
	dir      string
	errs     errList
	layers   map[string]*Layer
	layerSrc map[string]*layerSrc
}

func load(fsys fs.FS, dir string) (*Project, error) {
	l := &loader{fsys: fsys, dir: dir, layers: map[string]*Layer{}, layerSrc: map[string]*layerSrc{}}
	data, err := fs.ReadFile(fsys, "images.yml")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Errors{{Pos: Pos{File: "images.yml"}, Msg: fmt.Sprintf("not found in %s (run ov in a project directory or pass -C DIR)", dir)}}
	}
	if err != nil {
		return nil, ioError("images.yml", err)
	}
	raw := parseImages(&doc{file: "images.yml", errs: &l.errs}, data)
	if err := l.readLayers(); err != nil {
		return nil, ioError("", err)
	}
	if _, err := fs.ReadFile(fsys, HeaderFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, ioError(HeaderFile, err)
	}
	l.checkLayerGraph()
	p := l.resolve(raw)
	if errs := dedup(l.errs.list); len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return p, nil
}

// dedup drops repeated errors: a bad value in defaults is found once per
// image that inherits it.
func dedup(es Errors) Errors {
	seen := map[Error]bool{}
	var out Errors
	for _, e := range es {
		if !seen[*e] {
			seen[*e] = true
			out = append(out, e)
		}
	}
	return out
}

// checkLayerGraph reports unknown dependencies and dependency cycles among
// all layers, used or not.
func (l *loader) checkLayerGraph() {
	names := sortedKeys(l.layers)
	for _, name := range names {
		src := l.layerSrc[name]
		for i, dep := range l.layers[name].Depends {
			if l.layers[dep] == nil {
				l.errs.add(Pos{File: src.file, Line: src.dependsLine[i]}, "depends: unknown layer %q%s", clip(dep), didYouMean(dep, names))
			}
		}
	}
	const (
		unvisited = iota
		active
		done
	)
	state := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		state[name] = active
		stack = append(stack, name)
		layer := l.layers[name]
		for i, dep := range layer.Depends {
			if l.layers[dep] == nil {
				continue
			}
			switch state[dep] {
			case unvisited:
				visit(dep)
			case active:
				cycle := append(cutFrom(stack, dep), dep)
				src := l.layerSrc[name]
				l.errs.add(Pos{File: src.file, Line: src.dependsLine[i]}, "circular dependency: %s", strings.Join(cycle, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
	}
	for _, name := range names {
		if state[name] == unvisited {
			visit(name)
		}
	}
}

// cutFrom returns a copy of the tail of stack starting at s.
func cutFrom(stack []string, s string) []string {
	for i, x := range stack {
		if x == s {
			return append([]string(nil), stack[i:]...)
		}
	}
	return nil
}
