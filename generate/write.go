package generate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

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
			out[RoutesPath(img.Name)] = img.Routes
		}
		for _, f := range img.Fragments {
			if f.Name != filepath.Base(f.Name) || !strings.HasSuffix(f.Name, ".conf") {
				return nil, fmt.Errorf("image %q: bad fragment name %q", img.Name, f.Name)
			}
			out[FragmentsDir(img.Name)+"/"+f.Name] = f.Content
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
// atomically (a temporary file in the same directory, renamed over the
// target), so a concurrent generate or a running build never reads a
// half-written file; unchanged files are not touched. It then removes what
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
	var g errgroup.Group
	g.SetLimit(2 * runtime.GOMAXPROCS(0))
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		if rel == BakePath {
			continue
		}
		g.Go(func() error { return WriteFile(filepath.Join(dir, filepath.FromSlash(rel)), files[rel]) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := WriteFile(filepath.Join(dir, filepath.FromSlash(BakePath)), files[BakePath]); err != nil {
		return err
	}
	return prune(dir, plans, p, files)
}

// WriteFile replaces file with data atomically: readers see the old or the
// new content, never a mix. An identical file is left alone. There is no
// fsync: the rename is what readers need, and after a crash the next
// generate rewrites any file that did not reach the disk (an fsync per file
// made a first generate of 100 images take seconds).
func WriteFile(file string, data []byte) error {
	if old, err := os.ReadFile(file); err == nil && bytes.Equal(old, data) {
		return nil
	}
	d := filepath.Dir(file)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	// The temporary name neither ends in .conf nor looks like an output.
	f, err := os.CreateTemp(d, "."+filepath.Base(file)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return nil
}

// prune removes generated files that no longer apply.
func prune(dir string, plans []*plan.Image, p *spec.Project, files map[string][]byte) error {
	build := filepath.Join(dir, ".build")
	entries, err := os.ReadDir(build)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, img := range plans {
		keep[img.Name] = true
	}
	if p != nil {
		for _, n := range p.Order { // enabled images, planned this time or not
			keep[n] = true
		}
	}
	for _, e := range entries {
		if !e.IsDir() || keep[e.Name()] {
			continue
		}
		cf := filepath.Join(build, e.Name(), "Containerfile")
		if generated(cf, ContainerfilePath(e.Name())) {
			if err := os.RemoveAll(filepath.Join(build, e.Name())); err != nil {
				return err
			}
		}
	}
	for _, img := range plans {
		rel := RoutesPath(img.Name)
		if _, ok := files[rel]; !ok {
			if err := removeGenerated(filepath.Join(dir, rel), rel); err != nil {
				return err
			}
		}
		fd := filepath.Join(dir, FragmentsDir(img.Name))
		frags, err := os.ReadDir(fd)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		for _, f := range frags {
			rel := FragmentsDir(img.Name) + "/" + f.Name()
			if _, ok := files[rel]; !ok && strings.HasSuffix(f.Name(), ".conf") {
				if err := removeGenerated(filepath.Join(fd, f.Name()), rel); err != nil {
					return err
				}
			}
		}
		os.Remove(fd) // only if now empty
	}
	return nil
}

func removeGenerated(file, rel string) error {
	if !generated(file, rel) {
		return nil
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// generated reports whether file starts with ov's header for rel (with "#"
// or, in supervisord fragments, ";" as the comment mark).
func generated(file, rel string) bool {
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return false
	}
	h := Header(rel) + "\n"
	return line == h || line == ";"+h[1:]
}
