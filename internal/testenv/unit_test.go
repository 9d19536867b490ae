package testenv

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/buildkit/cmd/buildkitd/config"
)

func TestDeriveBuildkitdConfig(t *testing.T) {
	hack, err := os.ReadFile("../../hack/buildkitd.toml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := DeriveBuildkitdConfig(hack, "127.0.0.1:41234")
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, "127.0.0.1:5000") || !strings.Contains(s, `[registry."127.0.0.1:41234"]`) || !strings.Contains(s, `mirrors = ["127.0.0.1:41234"]`) {
		t.Errorf("derived config:\n%s", s)
	}
	cfg, err := config.Load(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Registries["ghcr.io"].Mirrors; !slices.Equal(m, []string{"127.0.0.1:41234"}) {
		t.Errorf("ghcr.io mirrors = %q, want the registry (fake pixi image)", m)
	}
	// A config that already mirrors ghcr.io to the loopback registry keeps
	// its own table; one mirroring it elsewhere is refused.
	own := string(hack) + "\n[registry.\"ghcr.io\"]\n  mirrors = [\"127.0.0.1:5000\"]\n"
	if out, err := DeriveBuildkitdConfig([]byte(own), "127.0.0.1:41234"); err != nil || strings.Count(string(out), `[registry."ghcr.io"]`) != 1 {
		t.Errorf("own ghcr.io mirror: %v\n%s", err, out)
	}
	other := string(hack) + "\n[registry.\"ghcr.io\"]\n  mirrors = [\"mirror.example\"]\n"
	if _, err := DeriveBuildkitdConfig([]byte(other), "127.0.0.1:41234"); err == nil || !strings.Contains(err.Error(), "ghcr.io mirrors") {
		t.Errorf("ghcr.io mirrored elsewhere: err = %v", err)
	}
	if _, err := DeriveBuildkitdConfig([]byte("[worker.oci]\nenabled = true\n"), "127.0.0.1:1"); err == nil {
		t.Error("config without the loopback registry accepted")
	}
	if _, err := DeriveBuildkitdConfig([]byte("[registry.\"127.0.0.1:5000\"]\nhttp = \"yes\"\n"), "127.0.0.1:1"); err == nil {
		t.Error("config buildkitd cannot parse accepted")
	}
}

// TestRootfsTarRoundTrip: modes, owners, symlinks and hard links survive
// writeRootfsTar -> layer -> Flatten; device dir contents stay out.
func TestRootfsTarRoundTrip(t *testing.T) {
	root := t.TempDir()
	mk := func(p, body string, mode os.FileMode) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(full, mode)
	}
	mk("usr/bin/tool", "#!/bin/sh\n", os.ModeSetuid|0o755)
	mk("etc/shadow", "secret\n", 0o640)
	os.Chown(filepath.Join(root, "etc/shadow"), 0, 42)
	mk("dev/null-ish", "x", 0o644)
	os.MkdirAll(filepath.Join(root, "tmp"), 0o755)
	os.Chmod(filepath.Join(root, "tmp"), os.ModeSticky|0o777)
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool2")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeRootfsTar(root, &buf); err != nil {
		t.Fatal(err)
	}
	files := flattenTars(t, buf.Bytes())
	want := map[string]File{
		"/usr/bin/tool":  {Type: tar.TypeReg, Mode: 0o4755, Size: 10},
		"/usr/bin/tool2": {Type: tar.TypeLink, Mode: 0o4755, Linkname: "/usr/bin/tool", Size: 10},
		"/etc/shadow":    {Type: tar.TypeReg, Mode: 0o640, GID: 42, Size: 7},
		"/bin":           {Type: tar.TypeSymlink, Mode: 0o777, Linkname: "usr/bin"},
		"/tmp":           {Type: tar.TypeDir, Mode: 0o1777},
		"/dev":           {Type: tar.TypeDir, Mode: 0o755},
	}
	for p, w := range want {
		g, ok := files[p]
		g.SHA256 = ""
		if !ok || g != w {
			t.Errorf("%s = %+v (present %v), want %+v", p, g, ok, w)
		}
	}
	if _, ok := files["/dev/null-ish"]; ok {
		t.Error("contents of /dev went into the layer")
	}
	if files["/usr/bin/tool2"].SHA256 != files["/usr/bin/tool"].SHA256 || files["/usr/bin/tool"].SHA256 == "" {
		t.Error("hard link does not carry its target's digest")
	}
}

// TestFlattenWhiteouts: a whiteout hides a lower file, an opaque dir hides
// the lower dir's contents but not the upper's own.
func TestFlattenWhiteouts(t *testing.T) {
	reg := func(name, body string) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, body: []byte(body)}
	}
	dir := func(name string) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
	}
	lower := tarBytes(t, []tarEntry{dir("a/"), reg("a/gone", "1"), reg("a/kept", "2"), dir("o/"), reg("o/old", "3")})
	upper := tarBytes(t, []tarEntry{reg("a/.wh.gone", ""), dir("o/"), reg("o/.wh..wh..opq", ""), reg("o/new", "4")})
	files := flattenTars(t, lower, upper)
	for _, p := range []string{"/a/gone", "/o/old", "/a/.wh.gone", "/o/.wh..wh..opq"} {
		if _, ok := files[p]; ok {
			t.Errorf("%s visible after whiteout", p)
		}
	}
	for _, p := range []string{"/a/kept", "/o/new"} {
		if _, ok := files[p]; !ok {
			t.Errorf("%s missing", p)
		}
	}
}

func TestFindImagePlatforms(t *testing.T) {
	var idx v1.ImageIndex = empty.Index
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		img, err := newImage(p, v1.Config{}, mustLayer(t, tarBytes(t, []tarEntry{{hdr: tar.Header{Typeflag: tar.TypeReg, Name: p.Architecture, Mode: 0o644}}})))
		if err != nil {
			t.Fatal(err)
		}
		pp := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pp}})
	}
	for _, c := range []struct{ platform, file string }{{"linux/amd64", "/amd64"}, {"linux/arm64", "/arm64"}, {"linux/arm64/v8", "/arm64"}} {
		img, err := FindImage(idx, c.platform)
		if err != nil {
			t.Fatal(err)
		}
		snap, err := Snap(img)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := snap.Files[c.file]; !ok {
			t.Errorf("%s: got image with %v", c.platform, snap.Files)
		}
	}
	if _, err := FindImage(idx, ""); err == nil {
		t.Error("ambiguous platform accepted")
	}
	if _, err := FindImage(idx, "linux/riscv64"); err == nil || !strings.Contains(err.Error(), "linux/arm64") {
		t.Errorf("missing platform: %v", err)
	}
}

func tarBytes(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := writeEntries(&buf, entries); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustLayer(t *testing.T, tarball []byte) v1.Layer {
	t.Helper()
	l, err := layerFromBytes(tarball)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// flattenTars stacks uncompressed layer tars (bottom first) and flattens.
func flattenTars(t *testing.T, layers ...[]byte) map[string]File {
	t.Helper()
	var ls []v1.Layer
	for _, b := range layers {
		ls = append(ls, mustLayer(t, b))
	}
	img, err := newImage(v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Config{}, ls...)
	if err != nil {
		t.Fatal(err)
	}
	files, err := Flatten(img)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func layerFromBytes(b []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// TestLayerDiff: of two layouts whose second layer differs in one file's
// content and another's mode, LayerDiff names that layer and both files,
// and not the equal layer or file.
func TestLayerDiff(t *testing.T) {
	reg := func(name, body string, mode int64) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: []byte(body)}
	}
	base := mustLayer(t, tarBytes(t, []tarEntry{reg("base", "b", 0o644)}))
	layouts := make([]string, 2)
	for i, top := range [][]tarEntry{
		{reg("same", "s", 0o644), reg("content", "one", 0o644), reg("mode", "m", 0o644)},
		{reg("same", "s", 0o644), reg("content", "two", 0o644), reg("mode", "m", 0o755)},
	} {
		img, err := newImage(v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Config{}, base, mustLayer(t, tarBytes(t, top)))
		if err != nil {
			t.Fatal(err)
		}
		layouts[i] = t.TempDir()
		if err := writeLayout(layouts[i], img); err != nil {
			t.Fatal(err)
		}
	}
	got := LayerDiff(layouts[0], layouts[1], "")
	if !strings.Contains(got, "layer 1 ") || strings.Contains(got, "layer 0") {
		t.Errorf("want layer 1 alone:\n%s", got)
	}
	for _, want := range []string{"content: ", "mode: ", "mode 644", "mode 755"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "same: ") || strings.Contains(got, "base: ") {
		t.Errorf("an equal file is named:\n%s", got)
	}
	if LayerDiff(layouts[0], layouts[0], "") != "" {
		t.Error("a layout differs from itself")
	}
}
