package llb

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"

	"github.com/overthink/ov/engine"
	"github.com/overthink/ov/export"
	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/merge"
	"github.com/overthink/ov/plan"
)

// mergeMax is the merge limit of the tests: the busybox layer (about 1 MB
// compressed) and the random 300 KB layer stay alone, the small step layers
// around them merge.
const mergeMax = 200 << 10

// layered is a busybox image with five small layers: overwrites, deletes,
// a replaced directory, hard links and symlinks, and one incompressible
// layer larger than mergeMax in the middle.
func layered(platforms ...string) *plan.Image {
	run := func(i int, shell string) plan.Step {
		return plan.Step{Kind: plan.Run, Layer: fmt.Sprintf("l%d", i), User: "root", Desc: fmt.Sprintf("l%d: root.yml", i), Shell: shell}
	}
	img := busybox(
		run(1, "mkdir -p /data/dir && echo one > /data/a && echo keep > /data/keep && ln -s a /data/link && echo x > /data/dir/x && uname -m > /arch"),
		run(2, "echo two > /data/a && ln /data/keep /data/hard && echo more >> /data/dir/x && chmod 0640 /data/dir/x"),
		run(3, "head -c 300000 /dev/urandom > /big"),
		run(4, "rm /data/keep && rm -rf /data/dir && mkdir /data/dir && echo y > /data/dir/y && ln -sf /nowhere /data/link"),
		run(5, "chmod 0600 /data/hard && echo five > /five && mkdir -p /home/u && chown 1000:1000 /home/u"),
	)
	img.Name, img.Tags = "layered", []string{"ov.test/layered:1", "ov.test/layered:latest"}
	img.Env = []plan.EnvVar{{Key: "OV_M", Value: "merged"}}
	img.Expose = []int{8080}
	img.FinalUser = "1000"
	if len(platforms) > 0 {
		img.Platforms = platforms
	}
	return img
}

func fixedMax(n int64) func(*plan.Image) int64 {
	return func(*plan.Image) int64 { return n }
}

// checkMerged asserts that merged is unmerged with its layers grouped as
// merge.Plan groups them, the same filesystem and config, and that merging
// it again changes nothing.
func checkMerged(t *testing.T, platform string, unmerged, merged v1.Image) {
	t.Helper()
	groups, err := merge.Plan(unmerged, mergeMax)
	if err != nil {
		t.Fatal(err)
	}
	ml, err := merged.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var nMerged int
	for _, g := range groups {
		if g.Merge() {
			nMerged++
		}
	}
	// The fixture must exercise both: merged groups and kept layers.
	if nMerged == 0 || nMerged == len(groups) {
		t.Fatalf("%s: %d of %d groups merge: the fixture does not exercise merging", platform, nMerged, len(groups))
	}
	if len(ml) != len(groups) {
		t.Fatalf("%s: %d merged layers, merge.Plan has %d groups", platform, len(ml), len(groups))
	}
	mcf := configOf(t, merged)
	var created []string
	for _, h := range mcf.History {
		if !h.EmptyLayer {
			created = append(created, h.CreatedBy)
		}
	}
	if len(created) != len(ml) {
		t.Fatalf("%s: %d history entries for %d layers", platform, len(created), len(ml))
	}
	for k, g := range groups {
		d, _ := ml[k].Digest()
		switch {
		case !g.Merge() && d != g.Digests[0]:
			t.Errorf("%s: layer %d: kept layer %s became %s", platform, k, g.Digests[0], d)
		case g.Merge() && !strings.HasPrefix(created[k], fmt.Sprintf("ov merge: %d layers (max %d B)", len(g.Layers), mergeMax)):
			t.Errorf("%s: layer %d: history %q, want the merge of %d layers", platform, k, created[k], len(g.Layers))
		}
	}

	ufs, err := testenv.Flatten(unmerged)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := testenv.Flatten(merged)
	if err != nil {
		t.Fatal(err)
	}
	diffFiles(t, platform, ufs, mfs)
	if ufs["/data/dir/y"].Size == 0 || ufs["/data/hard"].Mode != 0o600 {
		t.Errorf("%s: fixture filesystem unexpected: %+v %+v", platform, ufs["/data/dir/y"], ufs["/data/hard"])
	}

	ucf := configOf(t, unmerged)
	if !reflect.DeepEqual(ucf.Config, mcf.Config) || ucf.OS != mcf.OS || ucf.Architecture != mcf.Architecture || ucf.Variant != mcf.Variant {
		t.Errorf("%s: config changed:\n%+v\n%+v", platform, ucf.Config, mcf.Config)
	}
	empties := func(cf *v1.ConfigFile) (out []string) {
		for _, h := range cf.History {
			if h.EmptyLayer {
				out = append(out, h.CreatedBy)
			}
		}
		return out
	}
	if u, m := empties(ucf), empties(mcf); !slices.Equal(u, m) {
		t.Errorf("%s: empty-layer history %q, want %q", platform, m, u)
	}

	// Idempotent: a second merge keeps every layer.
	again, err := merge.Plan(merged, mergeMax)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range again {
		if g.Merge() {
			t.Errorf("%s: merging the merged image again merges layers %v", platform, g.Layers)
		}
	}
	m2, err := merge.Image(context.Background(), merged, mergeMax)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	d1, _ := merged.Digest()
	d2, _ := m2.Digest()
	if d1 != d2 {
		t.Errorf("%s: merging again changed the digest %s -> %s", platform, d1, d2)
	}
}

func diffFiles(t *testing.T, what string, want, got map[string]testenv.File) {
	t.Helper()
	var bad []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			bad = append(bad, "missing "+p)
		} else if g != w {
			bad = append(bad, fmt.Sprintf("%s: %+v, want %+v", p, g, w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			bad = append(bad, "extra "+p)
		}
	}
	slices.Sort(bad)
	if len(bad) > 10 {
		bad = append(bad[:10], fmt.Sprintf("... %d more", len(bad)-10))
	}
	for _, b := range bad {
		t.Errorf("%s: flattened filesystem differs: %s", what, b)
	}
}

// indexNames is the image names of a layout's index.json, sorted.
func indexNames(t *testing.T, dir string) []string {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range m.Manifests {
		names = append(names, d.Annotations["io.containerd.image.name"]+" "+d.Annotations["org.opencontainers.image.ref.name"]+" "+string(d.MediaType))
	}
	slices.Sort(names)
	return names
}

func noLeftovers(t *testing.T, dirs ...string) {
	t.Helper()
	for _, dir := range dirs {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") || strings.Contains(e.Name(), "ov-merge") {
				t.Errorf("temp data left in %s: %s", dir, e.Name())
			}
		}
	}
}

// TestMergeExportLayouts builds a two-platform image once and exports it
// unmerged and merged (OCI layout and archive) from the same solve.
func TestMergeExportLayouts(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	mergedDir, archiveDir := t.TempDir(), t.TempDir()
	archive := filepath.Join(archiveDir, "layered.tar")
	img := layered()
	// BuildKit writes one OCI layout directory per solve: the unmerged
	// image comes as an archive.
	unmergedTar := filepath.Join(t.TempDir(), "unmerged.tar")
	res, err := Build(context.Background(), c, BuildOptions{
		Family: []*plan.Image{img},
		Exporter: export.Multi[export.Exporter](
			export.OCIArchive(func(*plan.Image) string { return unmergedTar }),
			export.Merging(fixedMax(mergeMax), export.OCILayout(mergedDir), export.OCIArchive(func(*plan.Image) string { return archive })),
		),
	})
	if err != nil {
		t.Fatal(err)
	}
	unmergedDir := untarLayout(t, unmergedTar)
	unmerged := layoutImages(t, unmergedDir)
	merged := layoutImages(t, filepath.Join(mergedDir, "layered"))
	if len(unmerged) != 2 || len(merged) != 2 {
		t.Fatalf("platforms: unmerged %d, merged %d", len(unmerged), len(merged))
	}
	archived := layoutImages(t, untarLayout(t, archive))
	var summary []string
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		u, m := unmerged[p], merged[p]
		if u == nil || m == nil {
			t.Fatalf("%s: unmerged %v merged %v", p, u, m)
		}
		checkMerged(t, p, u, m)
		ul, _ := u.Layers()
		ml, _ := m.Layers()
		summary = append(summary, fmt.Sprintf("%s: %d -> %d layers", p, len(ul), len(ml)))

		// The archive holds the same merged image.
		ad, _ := archived[p].Digest()
		md, _ := m.Digest()
		if ad != md {
			t.Errorf("%s: archived image %s, layout %s", p, ad, md)
		}
	}
	// BuildKit's result reports the merged image.
	resp := res[0].ExporterResponse
	for _, want := range summary {
		if !strings.Contains(resp[export.MergeSummaryKey], want) {
			t.Errorf("%s = %q, want %q", export.MergeSummaryKey, resp[export.MergeSummaryKey], want)
		}
	}
	mi, err := layout.ImageIndexFromPath(filepath.Join(mergedDir, "layered"))
	if err != nil {
		t.Fatal(err)
	}
	im, err := mi.IndexManifest()
	if err != nil || len(im.Manifests) == 0 {
		t.Fatalf("merged index: %v %v", im, err)
	}
	root := im.Manifests[0] // the image, listed once per tag
	if got := resp[exptypes.ExporterImageDigestKey]; got != root.Digest.String() {
		t.Errorf("reported digest %s, merged index %s", got, root.Digest)
	}
	// Same index.json entries (names, one per tag), nested index kept.
	u, m := indexNames(t, unmergedDir), indexNames(t, filepath.Join(mergedDir, "layered"))
	if !slices.Equal(u, m) || len(m) != 2 {
		t.Errorf("index.json entries %q, want %q", m, u)
	}
	ents, _ := os.ReadDir(archiveDir)
	if len(ents) != 1 {
		t.Errorf("archive dir holds %d entries", len(ents))
	}
	noLeftovers(t, tmp, mergedDir, archiveDir)
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		t.Errorf("TMPDIR holds %d entries", len(ents))
	}

	// A rebuild merges into the existing layout, reusing its blobs.
	blobs := filepath.Join(mergedDir, "layered", "blobs", "sha256")
	before := inodes(t, blobs)
	if _, err := Build(context.Background(), c, BuildOptions{Family: []*plan.Image{img}, Exporter: export.Merging(fixedMax(mergeMax), export.OCILayout(mergedDir))}); err != nil {
		t.Fatal(err)
	}
	after := inodes(t, blobs)
	var reused int
	for n, ino := range before {
		if after[n] == ino {
			reused++
		}
	}
	if reused == 0 {
		t.Errorf("no blob of the old layout was reused (%d before, %d after)", len(before), len(after))
	}
	for p, m := range layoutImages(t, filepath.Join(mergedDir, "layered")) {
		checkMerged(t, p+" rebuilt", unmerged[p], m)
	}
	noLeftovers(t, tmp, mergedDir)
}

// TestMergeExportPushLoad pushes and loads merged images.
func TestMergeExportPushLoad(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	reg := newCountingRegistry(t)
	img := layered()
	img.Tags = []string{reg.host + "/ov/layered:1", reg.host + "/ov/layered:latest"}
	unmergedTar := filepath.Join(t.TempDir(), "unmerged.tar")
	if _, err := Build(context.Background(), c, BuildOptions{
		Family:   []*plan.Image{img},
		Exporter: export.Multi[export.Exporter](export.OCIArchive(func(*plan.Image) string { return unmergedTar }), export.Merging(fixedMax(mergeMax), export.Push())),
	}); err != nil {
		t.Fatal(err)
	}
	unmerged := layoutImages(t, untarLayout(t, unmergedTar))
	for _, tag := range img.Tags {
		ref, err := name.ParseReference(tag)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Index(ref)
		if err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		for _, p := range []string{"linux/amd64", "linux/arm64"} {
			m, err := testenv.FindImage(idx, p)
			if err != nil {
				t.Fatalf("%s: %v", tag, err)
			}
			checkMerged(t, tag+" "+p, unmerged[p], m)
		}
	}
	noLeftovers(t, tmp)

	// Load: one platform, into podman.
	store := t.TempDir()
	podman := []string{"--root", filepath.Join(store, "root"), "--runroot", filepath.Join(store, "run"), "--storage-driver", "vfs"}
	one := layered("linux/amd64")
	one.Tags = []string{"localhost/ov-merge-load:1", "localhost/ov-merge-load:latest"}
	res, err := Build(context.Background(), c, BuildOptions{Family: []*plan.Image{one}, Exporter: export.Merging(fixedMax(mergeMax), export.Load(engine.Engine{Bin: "podman", Flags: podman}))})
	if err != nil {
		t.Fatal(err)
	}
	ul, _ := unmerged["linux/amd64"].Layers()
	groups, _ := merge.Plan(unmerged["linux/amd64"], mergeMax)
	if want := fmt.Sprintf("linux/amd64: %d -> %d layers", len(ul), len(groups)); res[0].ExporterResponse[export.MergeSummaryKey] != want {
		t.Errorf("summary %q, want %q", res[0].ExporterResponse[export.MergeSummaryKey], want)
	}
	for _, tag := range one.Tags {
		out, err := runCmd("podman", append(podman, "image", "inspect", "--format", "{{len .RootFS.Layers}} {{.Config.User}}", tag)...)
		if want := fmt.Sprintf("%d 1000\n", len(groups)); err != nil || out != want {
			t.Errorf("podman image inspect %s: %q, %v; want %q", tag, out, err, want)
		}
	}
	out, err := runCmd("podman", append(podman, "run", "--rm", "--net=none", "localhost/ov-merge-load:1", "sh", "-c", "cat /data/a /data/dir/y /five; readlink /data/link; ls /data")...)
	if want := "two\ny\nfive\n/nowhere\na\ndir\nhard\nlink\n"; err != nil || out != want {
		t.Errorf("podman run: %q, %v; want %q", out, err, want)
	}
	noLeftovers(t, tmp)
}

// TestMergeExportFailures: a failed delivery leaves no temp data; an image
// without a limit is exported as built; a load of two platforms is refused
// before the build. (A destination that cannot take a merged image does not
// compile: Merging takes export.Dest.)
func TestMergeExportFailures(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	img := layered("linux/amd64")
	img.Tags = []string{"127.0.0.1:1/ov/layered:1"} // nothing listens there
	_, err := Build(context.Background(), c, BuildOptions{Family: []*plan.Image{img}, Exporter: export.Merging(fixedMax(mergeMax), export.Push())})
	if err == nil || !strings.Contains(err.Error(), "push 127.0.0.1:1/ov/layered:1") {
		t.Fatalf("push to a closed port: %v", err)
	}
	noLeftovers(t, tmp)
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		t.Errorf("TMPDIR holds %d entries after a failed push", len(ents))
	}

	out := t.TempDir()
	none := func(*plan.Image) int64 { return 0 }
	res, err := Build(context.Background(), c, BuildOptions{Family: []*plan.Image{layered("linux/amd64")}, Exporter: export.Merging(none, export.OCILayout(out))})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res[0].ExporterResponse[export.MergeSummaryKey]; ok {
		t.Error("an image without a limit was merged")
	}
	plain := layoutImages(t, filepath.Join(out, "layered"))["linux/amd64"]
	groups, _ := merge.Plan(plain, mergeMax)
	if l, _ := plain.Layers(); len(l) == len(groups) {
		t.Errorf("the unmerged export has %d layers, as many as merged", len(l))
	}

	// Two platforms cannot be loaded, merged or not.
	_, err = Build(context.Background(), c, BuildOptions{Family: []*plan.Image{layered()}, Exporter: export.Merging(fixedMax(mergeMax), export.Load(engine.Engine{Bin: "podman"}))})
	if err == nil || !strings.Contains(err.Error(), "one platform") {
		t.Errorf("multi-platform load: %v", err)
	}
	noLeftovers(t, tmp)
}

// untarLayout extracts an OCI archive into a temp directory.
func untarLayout(t *testing.T, file string) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				var b []byte
				if b, err = io.ReadAll(tr); err == nil {
					err = os.WriteFile(p, b, 0o644)
				}
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
