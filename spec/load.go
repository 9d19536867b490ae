package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Load reads the project in dir: images.yml and every layers/<name>/. It
// resolves inheritance, layer order and image order and checks every rule,
// collecting all problems. User errors come back as Errors (use errors.As);
// any other error is an internal one (I/O), not the user's.
func Load(dir string) (*Project, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return load(os.DirFS(abs), abs)
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
		return nil, fmt.Errorf("reading images.yml: %w", err)
	}
	raw := parseImages(&doc{file: "images.yml", errs: &l.errs}, data)
	if err := l.readLayers(); err != nil {
		return nil, err
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
