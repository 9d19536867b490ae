package generate

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/overthink/ov/internal/builddir"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// Files renders every generated file for plans, keyed by path relative to
// the project (".build/...").
func Files(plans []*plan.Image) (map[string][]byte, error) {
	// Containerfiles are independent: render them on every core; report
	// the first failure in plan order, as a sequential loop would.
	cfs := make([][]byte, len(plans))
	errs := make([]error, len(plans))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, img := range plans {
		g.Go(func() error {
			cfs[i], errs[i] = Containerfile(img)
			return nil
		})
	}
	g.Wait()
	out := map[string][]byte{}
	for i, img := range plans {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out[ContainerfilePath(img.Name)] = cfs[i]
		if img.Routes != nil {
			out[plan.RoutesPath(img.Name)] = img.Routes
		}
		for _, f := range img.Fragments {
			if f.Name != filepath.Base(f.Name) || !strings.HasSuffix(f.Name, ".conf") {
				return nil, fmt.Errorf("image %q: bad fragment name %q", img.Name, f.Name)
			}
			out[plan.FragmentsDir(img.Name)+"/"+f.Name] = f.Content
		}
	}
	hcl, err := Bake(plans)
	if err != nil {
		return nil, err
	}
	out[BakePath] = hcl
	return out, nil
}

// Write writes the generated files for plans under dir/.build, each
// atomically (builddir.Writer), so a running build never reads a
// half-written file; unchanged files are not touched, and no symbolic link
// under .build/ is followed. Callers hold the project's builddir lock. It then removes what
// earlier runs wrote and no longer applies: the .build/<image>/ directories
// of images that are disabled or gone from p, and stale routes and
// fragments. Only files that carry ov's generated header are removed.
func Write(dir string, plans []*plan.Image, p *spec.Project) error {
	files, err := Files(plans)
	if err != nil {
		return err
	}
	// Per-image files first (independent of each other: on every core),
	// the bake file that points at them last.
	w := builddir.NewWriter(dir)
	var g errgroup.Group
	g.SetLimit(2 * runtime.GOMAXPROCS(0))
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		if rel == BakePath {
			continue
		}
		g.Go(func() error { return w.WriteFile(rel, files[rel]) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := w.WriteFile(BakePath, files[BakePath]); err != nil {
		return err
	}
	return prune(dir, plans, p, files)
}

// prune removes generated files that no longer apply.
func prune(dir string, plans []*plan.Image, p *spec.Project, files map[string][]byte) error {
	entries, err := os.ReadDir(filepath.Join(dir, builddir.Dir))
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, n := range spec.ReservedImageNames { // ov's own data
		keep[n] = true
	}
	for _, img := range plans {
		keep[img.Name] = true
	}
	if p != nil {
		for _, n := range p.Order { // enabled images, planned this time or not
			keep[n] = true
		}
	}
	for _, e := range entries {
		if !e.IsDir() || keep[e.Name()] { // a link is not a directory here
			continue
		}
		if generated(dir, ContainerfilePath(e.Name())) {
			if err := os.RemoveAll(filepath.Join(dir, builddir.Dir, e.Name())); err != nil {
				return err
			}
		}
	}
	for _, img := range plans {
		rel := plan.RoutesPath(img.Name)
		if _, ok := files[rel]; !ok {
			if err := removeGenerated(dir, rel); err != nil {
				return err
			}
		}
		fd := plan.FragmentsDir(img.Name)
		if err := builddir.Check(dir, fd); err != nil {
			return err
		}
		frags, err := os.ReadDir(filepath.Join(dir, fd))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		for _, f := range frags {
			rel := fd + "/" + f.Name()
			if _, ok := files[rel]; !ok && strings.HasSuffix(f.Name(), ".conf") {
				if err := removeGenerated(dir, rel); err != nil {
					return err
				}
			}
		}
		os.Remove(filepath.Join(dir, fd)) // only if now empty
	}
	return nil
}

// removeGenerated removes rel (project-relative) when ov generated it.
func removeGenerated(dir, rel string) error {
	if !generated(dir, rel) {
		return nil
	}
	if err := os.Remove(filepath.Join(dir, filepath.FromSlash(rel))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// generated reports whether rel is a regular file (reached without a
// symbolic link) starting with ov's header for rel (with "#" or, in
// supervisord fragments, ";" as the comment mark).
func generated(dir, rel string) bool {
	f, err := builddir.Open(dir, rel)
	if err != nil {
		return false
	}
	defer f.Close()
	h := Header(rel) + "\n"
	line, err := bufio.NewReader(io.LimitReader(f, int64(len(h)))).ReadString('\n')
	if err != nil {
		return false
	}
	return line == h || line == ";"+h[1:]
}
