package llb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	bk "github.com/moby/buildkit/client/llb"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"

	"github.com/overthink/ov/export"
	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/plan"
)

// TestLayerStates: the layers warmed are those BuildKit exports (the
// chain's steps one by one, a detached group or a stretch of attached
// steps as one diff, the parent's layers under a child's), and each is
// made of the image's own vertices, so warming runs no step the image
// does not.
func TestLayerStates(t *testing.T) {
	parent, r := compileParent(t, amd64)
	child, err := Compile(context.Background(), childPlan(), amd64, Options{Resolver: r, Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	detached := busybox(
		detachStep("a", "echo a > /a"),
		plan.Step{Kind: plan.Run, Layer: "pkg", User: "root", Desc: "pkg: packages", Shell: "echo pkg > /pkg"},
		plan.Step{Kind: plan.Run, Layer: "pkg", User: "root", Desc: "pkg: more packages", Shell: "echo pkg > /pkg2"},
		detachStep("b", "echo b > /b"),
	)
	bb := &fakeResolver{configs: map[string]dockerspec.DockerOCIImage{"docker.io/library/busybox:latest": debianConfig()}}
	det, err := Compile(context.Background(), detached, amd64, Options{Resolver: bb})
	if err != nil {
		t.Fatal(err)
	}
	onDet := childPlan()
	onDet.Parent = "bb"
	detChild, err := Compile(context.Background(), onDet, amd64, Options{Resolver: bb, Parent: det})
	if err != nil {
		t.Fatal(err)
	}
	// The parent's chain: its bootstrap and steps, and the WORKDIR.
	chain := len(parentPlan("").Bootstrap) + len(parentPlan("").Steps) + 1
	for _, tc := range []struct {
		img          *Image
		steps, diffs int
	}{
		{parent, chain, 0},
		{child, chain + 1, 0}, // on a chain, a chain
		{det, 0, 3},           // a, the two package steps, b
		{detChild, 0, 4},      // the parent's, then the child's steps as one diff
	} {
		steps, diffs := 0, 0
		own := digests(t, tc.img.State)
		for i, st := range layerStates(tc.img.State) {
			switch st.Output().Vertex(context.Background(), nil).(type) {
			case *bk.DiffOp:
				diffs++
			default:
				steps++
			}
			for d := range digests(t, st.SetMarshalDefaults(bk.Platform(amd64))) {
				if !own[d] {
					t.Errorf("%s: layer %d has vertex %s the image does not", tc.img.Name, i, d)
				}
			}
		}
		if steps != tc.steps || diffs != tc.diffs {
			t.Errorf("%s: %d steps and %d diffs warmed, want %d and %d", tc.img.Name, steps, diffs, tc.steps, tc.diffs)
		}
	}
}

// digests are the vertices of st, the terminal one left out.
func digests(t *testing.T, st bk.State) map[digest.Digest]bool {
	t.Helper()
	def, err := st.Marshal(context.Background(), bk.LocalUniqueID("test"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[digest.Digest]bool{}
	for _, dt := range def.Def[:len(def.Def)-1] {
		out[digest.FromBytes(dt)] = true
	}
	return out
}

func TestBlobAttrs(t *testing.T) {
	for _, tc := range []struct {
		entries []client.ExportEntry
		want    string
	}{
		{nil, ""},
		{[]client.ExportEntry{{Type: client.ExporterOCI, Attrs: map[string]string{"name": "x"}}}, ""},
		{[]client.ExportEntry{
			{Type: client.ExporterImage, Attrs: map[string]string{"name": "x", "push": "true"}},
			{Type: client.ExporterOCI, Attrs: map[string]string{"compression": "zstd", "compression-level": "3", "oci-mediatypes": "true"}},
		}, " compression=zstd compression-level=3"},
		{[]client.ExportEntry{{Type: client.ExporterOCI, Attrs: map[string]string{"compression": "uncompressed"}}}, " compression=uncompressed"},
	} {
		if got := attrsKey(blobAttrs(tc.entries)); got != tc.want {
			t.Errorf("blobAttrs(%v) = %q, want %q", tc.entries, got, tc.want)
		}
	}
}

// TestBuildWarmsLayers: a step's layer is compressed while a later step
// runs, not at the export. The first step's blob is in buildkitd's content
// store before the (4 s) step after it ends.
func TestBuildWarmsLayers(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	out := t.TempDir()
	nonce := fmt.Sprint(time.Now().UnixNano()) // nothing cached from an earlier run
	img := busybox(
		plan.Step{Kind: plan.Run, Layer: "big", User: "root", Desc: "big: write", Shell: "head -c 2000000 /dev/urandom > /big; echo " + nonce},
		plan.Step{Kind: plan.Run, Layer: "slow", User: "root", Desc: "slow: sleep", Shell: "sleep 4; echo " + nonce},
	)
	img.Platforms = []string{"linux/amd64"}
	var slowDone time.Time
	log := &statusLog{onVertex: func(v *client.Vertex) {
		if v.Completed != nil && strings.HasSuffix(v.Name, "slow: sleep") {
			slowDone = *v.Completed
		}
	}}
	if _, err := Build(context.Background(), c, BuildOptions{Family: []*plan.Image{img}, Exporter: export.OCILayout(out), Status: log.channel()}); err != nil {
		t.Fatal(err)
	}
	log.all()
	if slowDone.IsZero() {
		t.Fatal("no completed vertex for the slow step")
	}
	layers, err := layoutImages(t, filepath.Join(out, "bb"))["linux/amd64"].Layers()
	if err != nil || len(layers) < 2 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	big, err := layers[len(layers)-2].Digest()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(env.Dir, "buildkit", "root", "runc-overlayfs", "content", "blobs", big.Algorithm, big.Hex))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Before(slowDone) {
		t.Errorf("the first step's blob was written at %s, after the next step ended at %s: compressed at the export", fi.ModTime(), slowDone)
	}
}
