package llb

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/moby/buildkit/client"

	"github.com/overthink/ov/export"
	"github.com/overthink/ov/internal/tarwalk"
	"github.com/overthink/ov/plan"
)

// Verify (ov build --verify) proves an image's depends are right: reads
// leave no trace in a diff, so the detached-layer check cannot see a layer
// reading what a layer it does not depend on wrote. Verify builds each
// target detached (as ov build does, checks included) and as one chain (as
// its Containerfile does) on the same builder, and compares the two.

// Volatile matches paths whose content differs between any two runs of the
// same step (timestamps, run logs); their type, mode and owner are still
// compared.
var Volatile = regexp.MustCompile(`^(` + strings.Join([]string{
	`/var/log/.*`,                   // apt/dpkg logs carry timestamps
	`/var/cache/debconf/.*-old`,     // debconf's previous state, written with timestamps
	`/var/cache/ldconfig/aux-cache`, // ldconfig's cache of file stamps
	`/var/lib/dpkg/status-old`,      // dpkg's backup of the previous status
	`/home/[^/]+/\.npm/_logs/.*`,    // npm debug logs, named by time
	`/home/[^/]+/\.npm/_update-notifier-last-checked`,
	`/root/\.npm/_logs/.*`,
}, "|") + `)$`)

// FileInfo is what comparing two images compares of one path.
type FileInfo struct {
	Type     byte
	Mode     int64
	UID, GID int
	Link     string
	SHA256   string // regular files
}

func (f FileInfo) String() string {
	s := fmt.Sprintf("%s %04o %d:%d", typeName(f.Type), f.Mode, f.UID, f.GID)
	switch {
	case f.Link != "":
		s += " -> " + f.Link
	case f.SHA256 != "":
		s += " sha256:" + f.SHA256[:12]
	}
	return s
}

func typeName(t byte) string {
	switch t {
	case tar.TypeReg:
		return "file"
	case tar.TypeDir:
		return "dir"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hardlink"
	}
	return "type " + string(t)
}

// Flatten reads an image's root filesystem: path -> what it is.
func Flatten(img v1.Image) (map[string]FileInfo, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]FileInfo{}
	err := tarwalk.Stream(rc, func(h *tar.Header, content io.Reader) error {
		e := FileInfo{Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid, Link: h.Linkname}
		if h.Typeflag == tar.TypeReg {
			s := sha256.New()
			if _, err := io.Copy(s, content); err != nil {
				return err
			}
			e.SHA256 = hex.EncodeToString(s.Sum(nil))
		}
		out[path.Clean("/"+h.Name)] = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DiffFiles lists the paths where a and b differ, sorted; Volatile paths
// differ only by type, mode or owner.
func DiffFiles(a, b map[string]FileInfo) []string {
	var out []string
	for p := range a {
		ea, eb := a[p], b[p]
		if _, ok := b[p]; ok && Volatile.MatchString(p) {
			ea.SHA256, eb.SHA256 = "", ""
		}
		if _, ok := b[p]; !ok || ea != eb {
			out = append(out, p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// LayoutImages returns the images of an OCI image layout by platform
// ("os/arch").
func LayoutImages(dir string) (map[string]v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]v1.Image{}
	var walk func(v1.ImageIndex) error
	walk = func(idx v1.ImageIndex) error {
		m, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		for _, d := range m.Manifests {
			switch {
			case d.MediaType.IsIndex():
				sub, err := idx.ImageIndex(d.Digest)
				if err != nil {
					return err
				}
				if err := walk(sub); err != nil {
					return err
				}
			case d.Annotations["vnd.docker.reference.type"] == "attestation-manifest":
			case d.MediaType.IsImage():
				img, err := idx.Image(d.Digest)
				if err != nil {
					return err
				}
				cf, err := img.ConfigFile()
				if err != nil {
					return err
				}
				out[cf.OS+"/"+cf.Architecture] = img
			}
		}
		return nil
	}
	return out, walk(idx)
}

// Difference is one path (or the config) where an image built detached
// differs from the same image built as one chain.
type Difference struct {
	Image, Platform string
	Path            string // "" for the config
	Detached, Chain string // what each build has there ("absent" when it has nothing)
	// Writers are the layers whose steps wrote Path in the chain, in
	// order ("" for an image-level step).
	Writers []string
	// Fix is the layer whose depends would fix the difference and the
	// layers to add to them; Layer is "" when there is no such fix.
	Fix Fix
}

// Fix is a depends line that would make a difference go away.
type Fix struct {
	Layer   string
	Depends []string // the layer's depends, the ones to add included
	Add     []string
	// Candidates, when Add is empty: the layer reads a file of one of
	// these (layers before it that it does not see), but which one the
	// images do not tell.
	Candidates []string
}

// Verify builds the targets of opt both ways and returns their
// differences. opt.Exporter and opt.Linear are ignored: the images are
// written to OCI layouts under dir. opt.Status, when set, receives both
// builds' progress and is closed.
func Verify(ctx context.Context, c *client.Client, opt BuildOptions, dir string) ([]Difference, error) {
	status := opt.Status
	if status != nil {
		defer close(status)
	}
	results := map[bool][]Result{}
	for _, linear := range []bool{false, true} {
		o := opt
		o.Linear = linear
		o.Exporter = export.OCILayoutAt(func(img *plan.Image) string { return filepath.Join(dir, mode(linear), img.Name) })
		o.Status = nil
		forwarded := make(chan struct{})
		if status != nil {
			o.Status = make(chan *client.SolveStatus)
			go func(ch chan *client.SolveStatus) {
				defer close(forwarded)
				for s := range ch {
					status <- s
				}
			}(o.Status)
		} else {
			close(forwarded)
		}
		res, err := Build(ctx, c, o)
		<-forwarded // Build closed o.Status
		if err != nil {
			return nil, fmt.Errorf("verify (%s build): %w", mode(linear), err)
		}
		results[linear] = res
	}
	byName := map[string]*plan.Image{}
	for _, img := range opt.Family {
		byName[img.Name] = img
	}
	var out []Difference
	for _, r := range results[false] {
		d, err := compareImage(byName[r.Image], r.Decided[r.Image].Attached, filepath.Join(dir, mode(false), r.Image), filepath.Join(dir, mode(true), r.Image))
		if err != nil {
			return nil, fmt.Errorf("verify: image %q: %w", r.Image, err)
		}
		out = append(out, d...)
	}
	return out, nil
}

func mode(linear bool) string {
	if linear {
		return "chain"
	}
	return "detached"
}

// compareImage compares the detached and chain layouts of img, platform
// by platform; attached are the layers the detached build's checks
// attached.
func compareImage(img *plan.Image, attached []string, detachedDir, chainDir string) ([]Difference, error) {
	dets, err := LayoutImages(detachedDir)
	if err != nil {
		return nil, err
	}
	chains, err := LayoutImages(chainDir)
	if err != nil {
		return nil, err
	}
	var out []Difference
	for _, p := range slices.Sorted(maps.Keys(dets)) {
		det, chain := dets[p], chains[p]
		if chain == nil {
			return nil, fmt.Errorf("%s: no image built as one chain", p)
		}
		dc, err := det.ConfigFile()
		if err != nil {
			return nil, err
		}
		cc, err := chain.ConfigFile()
		if err != nil {
			return nil, err
		}
		if !reflect.DeepEqual(dc.Config, cc.Config) {
			out = append(out, Difference{Image: img.Name, Platform: p, Detached: fmt.Sprintf("%+v", dc.Config), Chain: fmt.Sprintf("%+v", cc.Config)})
		}
		df, err := Flatten(det)
		if err != nil {
			return nil, err
		}
		cf, err := Flatten(chain)
		if err != nil {
			return nil, err
		}
		paths := DiffFiles(df, cf)
		if len(paths) == 0 {
			continue
		}
		writers, err := layerWriters(chain, paths)
		if err != nil {
			return nil, err
		}
		detachedImg := img.Attach(attached)
		for _, f := range paths {
			d := Difference{Image: img.Name, Platform: p, Path: f, Detached: whatIs(df, f), Chain: whatIs(cf, f), Writers: writers[f]}
			d.Fix = fix(detachedImg, writers[f])
			out = append(out, d)
		}
	}
	return out, nil
}

func whatIs(fs map[string]FileInfo, p string) string {
	if e, ok := fs[p]; ok {
		return e.String()
	}
	return "absent"
}

// layerWriters maps each of paths to the layers whose steps wrote it in
// the chain image (a whiteout or opaque directory counts for what it
// hides), by the history ov writes: "<layer>: <step>" ("" for the base
// image's layers and image-level steps).
func layerWriters(img v1.Image, paths []string) (map[string][]string, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	var owners []string // per layer blob: the ov layer, "" for other steps
	for _, h := range cf.History {
		if h.EmptyLayer {
			continue
		}
		l, _, ok := strings.Cut(h.CreatedBy, ": ")
		if h.Comment != historyComment || !ok {
			l = ""
		}
		owners = append(owners, l)
	}
	if len(owners) != len(layers) {
		return nil, fmt.Errorf("%d layers, %d history entries with one", len(layers), len(owners))
	}
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
	}
	out := map[string][]string{}
	for i, layer := range layers {
		hit, err := layerHits(layer, want, paths)
		if err != nil {
			return nil, err
		}
		for _, p := range hit {
			if ws := out[p]; len(ws) == 0 || ws[len(ws)-1] != owners[i] {
				out[p] = append(ws, owners[i])
			}
		}
	}
	return out, nil
}

// layerHits lists which of paths one layer writes, deletes or hides.
func layerHits(layer v1.Layer, want map[string]bool, paths []string) ([]string, error) {
	hit := map[string]bool{}
	err := tarwalk.Layer(layer, func(h *tar.Header, _ io.Reader) error {
		p := path.Clean("/" + h.Name)
		dir, base := path.Split(p)
		switch {
		case base == ".wh..wh..opq": // hides everything under dir
			prefix := path.Clean(dir) + "/"
			for _, q := range paths {
				if strings.HasPrefix(q, prefix) {
					hit[q] = true
				}
			}
		case strings.HasPrefix(base, ".wh."): // deletes a path and what is under it
			gone := path.Join(dir, strings.TrimPrefix(base, ".wh."))
			for _, q := range paths {
				if q == gone || strings.HasPrefix(q, gone+"/") {
					hit[q] = true
				}
			}
		case want[p]:
			hit[p] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(hit)), nil
}

// fix says which depends line would make the chain's writers of a path
// run in order when detached: the last writer must see the ones before it.
// img is the image as the detached build built it.
func fix(img *plan.Image, writers []string) Fix {
	if len(writers) == 0 {
		return Fix{}
	}
	last := writers[len(writers)-1]
	if last == "" {
		return Fix{}
	}
	sees := map[string]bool{last: true}
	for _, d := range img.AllDepends(last) {
		sees[d] = true
	}
	detached := map[string]bool{}
	var before []string // the image's layers before last, in order
	for _, s := range img.Steps {
		if s.Layer == last {
			break
		}
		if s.Layer != "" && !slices.Contains(before, s.Layer) {
			before = append(before, s.Layer)
		}
		if s.Detach {
			detached[s.Layer] = true
		}
	}
	// Detached, last sees only the chain and its depends; attached, only
	// the chain.
	unseen := func(l string) bool { return detached[l] && !sees[l] }
	f := Fix{Layer: last}
	for _, w := range writers[:len(writers)-1] {
		if unseen(w) && !slices.Contains(f.Add, w) {
			f.Add = append(f.Add, w)
		}
	}
	if len(f.Add) == 0 {
		for _, l := range before {
			if unseen(l) {
				f.Candidates = append(f.Candidates, l)
			}
		}
		if len(f.Candidates) == 1 {
			f.Add, f.Candidates = f.Candidates, nil
		}
	}
	if len(f.Add) == 0 && len(f.Candidates) == 0 {
		return Fix{}
	}
	f.Depends = append(slices.Clone(img.Depends[last]), f.Add...)
	return f
}
