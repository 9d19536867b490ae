package export

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/overthink/ov/engine"
	"github.com/overthink/ov/plan"
)

// TestGuards: a destination refuses what it cannot take the same way
// whether the image goes to it as built or merged, before anything is
// built or written. (The exports themselves need buildkitd: llb's
// TestBuildOCIArchive, TestBuildPushFamily, TestBuildLoadPodman and
// TestMergeExport* run them.)
func TestGuards(t *testing.T) {
	ctx := context.Background()
	amd, arm := ocispecs.Platform{OS: "linux", Architecture: "amd64"}, ocispecs.Platform{OS: "linux", Architecture: "arm64"}
	untagged := &plan.Image{Name: "a"}
	tagged := &plan.Image{Name: "b", Tags: []string{"ov.test/b:1"}}
	limit := func(*plan.Image) int64 { return 1 << 20 }
	for _, tc := range []struct {
		name string
		dest Dest
		img  *plan.Image
		ps   []ocispecs.Platform
		want string
	}{
		{"push without tags", Push(), untagged, []ocispecs.Platform{amd}, `image "a" has no tags to push`},
		{"load of two platforms", Load(engine.Engine{Bin: "podman"}), tagged, []ocispecs.Platform{amd, arm}, `image "b": podman load takes one platform, not 2 (use --platform)`},
	} {
		for _, exp := range []Exporter{tc.dest, Multi(tc.dest), Merging(limit, tc.dest)} {
			if _, err := exp.Prepare(ctx, tc.img, tc.ps); err == nil || err.Error() != tc.want {
				t.Errorf("%s: %T: %v, want %q", tc.name, exp, err, tc.want)
			}
		}
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	if _, err := Merging(limit, OCILayout(tmp), Push()).Prepare(ctx, untagged, []ocispecs.Platform{amd}); err == nil {
		t.Error("merging to a push of an untagged image: no error")
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("a refused export left %d entries in %s", len(ents), tmp)
	}
}

// TestMergingWithoutLimit: an image whose limit is 0 goes to the
// destinations as BuildKit exports it, one entry each.
func TestMergingWithoutLimit(t *testing.T) {
	dir := t.TempDir()
	img := &plan.Image{Name: "a", Tags: []string{"ov.test/a:1", "ov.test/a:2"}}
	x, err := Merging(func(*plan.Image) int64 { return 0 }, OCILayout(dir), Push()).Prepare(context.Background(), img, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Abort()
	var got []string
	for _, e := range x.Entries() {
		got = append(got, e.Type+" "+e.Attrs["name"])
	}
	if strings.Join(got, ", ") != "oci ov.test/a:1,ov.test/a:2, image ov.test/a:1,ov.test/a:2" {
		t.Errorf("entries %q", got)
	}
	x.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Abort left %v in %s", ents, filepath.Base(dir))
	}
}
