package merge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// sizedLayer has a size and nothing else: Plan only looks at sizes.
type sizedLayer struct {
	size int64
	id   int
}

func (l sizedLayer) hash(kind string) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256([]byte(fmt.Sprint(kind, l.id))))}
}
func (l sizedLayer) Digest() (v1.Hash, error)            { return l.hash("digest"), nil }
func (l sizedLayer) DiffID() (v1.Hash, error)            { return l.hash("diffid"), nil }
func (l sizedLayer) Size() (int64, error)                { return l.size, nil }
func (l sizedLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }
func (l sizedLayer) Compressed() (io.ReadCloser, error)  { return nil, fmt.Errorf("no content") }
func (l sizedLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, fmt.Errorf("no content")
}

func sizedImage(t *testing.T, sizes []int64, createdBy []string) v1.Image {
	t.Helper()
	var adds []mutate.Addendum
	for i, s := range sizes {
		h := v1.History{CreatedBy: fmt.Sprintf("RUN step %d", i)}
		if createdBy != nil {
			h.CreatedBy = createdBy[i]
		}
		adds = append(adds, mutate.Addendum{Layer: sizedLayer{s, i}, History: h})
	}
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func groupLayers(groups []Group) string {
	var s []string
	for _, g := range groups {
		s = append(s, fmt.Sprint(g.Layers))
	}
	return strings.Join(s, " ")
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		sizes     []int64
		createdBy []string
		max       int64
		want      string
	}{
		{[]int64{50, 50, 50}, nil, 128, "[0 1] [2]"},
		{[]int64{50, 50, 28, 1}, nil, 128, "[0 1 2] [3]"},
		{[]int64{200, 10, 10}, nil, 128, "[0] [1 2]"},
		{[]int64{10, 200, 10}, nil, 128, "[0] [1] [2]"},
		{[]int64{10, 10, 10}, nil, 1, "[0] [1] [2]"},
		{[]int64{10, 10, 10}, nil, 1 << 40, "[0 1 2]"},
		{[]int64{128, 1}, nil, 128, "[0] [1]"},
		{[]int64{5}, nil, 128, "[0]"},
		// A layer an earlier merge made with this limit or a bigger one
		// stays alone; one made with a smaller limit may grow.
		{[]int64{10, 10, 10}, []string{"RUN a", "ov merge: 2 layers (max 128 B): RUN b; RUN c", "RUN d"}, 128, "[0] [1] [2]"},
		{[]int64{10, 10, 10}, []string{"RUN a", "ov merge: 2 layers (max 64 B): RUN b; RUN c", "RUN d"}, 128, "[0 1 2]"},
	} {
		groups, err := Plan(sizedImage(t, tc.sizes, tc.createdBy), tc.max)
		if err != nil {
			t.Fatal(err)
		}
		if got := groupLayers(groups); got != tc.want {
			t.Errorf("Plan(%v, %d) = %s, want %s", tc.sizes, tc.max, got, tc.want)
		}
	}
	if _, err := Plan(sizedImage(t, []int64{1}, nil), 0); err == nil {
		t.Error("Plan with max 0 accepted")
	}
}

func TestWritePlan(t *testing.T) {
	groups, err := Plan(sizedImage(t, []int64{300 << 20, 10 << 20, 20 << 10, 999, 200 << 20}, nil), 128<<20)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WritePlan(&buf, groups); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"0      300.0 MiB  sha256:",
		"[keep]",
		"1      10.0 MiB   sha256:",
		"[merge 1]  RUN step 1\n",
		"2      20.0 KiB",
		"3      999 B",
		"10.0 MiB                        [merge 1]  = 1 layer\n",
		"[keep]     RUN step 4\n",
		"5 layers -> 3 layers: 3 merged into 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Log("\n" + out)
	}
}

// TestHistory: merged entries replace their layers' entries where the last
// one was; empty-layer entries stay where they were.
func TestHistory(t *testing.T) {
	layers := genStack(t, 9, 4)
	img := testImage(t, layers, true, nil)
	img, err := mutate.Append(img,
		mutate.Addendum{History: v1.History{CreatedBy: "EXPOSE 80", EmptyLayer: true}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	// Put empty entries between layers: step 0, ENV, step 1, step 2, step 3, USER, EXPOSE.
	h := cfg.History
	cfg = cfg.DeepCopy()
	cfg.History = append([]v1.History{h[0], {CreatedBy: "ENV A=1", EmptyLayer: true}}, h[1:]...)
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	groups := []Group{{Layers: []int{0}}, {Layers: []int{1, 2}, CreatedBy: []string{"/bin/sh -c step 1", "/bin/sh -c step 2"}}, {Layers: []int{3}}}
	m, err := Apply(context.Background(), img, groups, 4096, WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out, _ := m.ConfigFile()
	var got []string
	for _, e := range out.History {
		got = append(got, e.CreatedBy)
	}
	want := []string{
		"/bin/sh -c step 0",
		"ENV A=1",
		"ov merge: 2 layers (max 4096 B): step 1; step 2",
		"/bin/sh -c step 3",
		"USER 1000",
		"EXPOSE 80",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("history:\n  got  %q\n  want %q", got, want)
	}
	if !out.History[2].Created.Equal(h[2].Created.Time) {
		t.Fatalf("merged entry created %v, want the newest of its layers %v", out.History[2].Created, h[2].Created)
	}
	checkConfig(t, img, m)
	checkSame(t, "history", flatten(t, img, specSemantics), m)

	// A re-plan with the same limit keeps the merged layer.
	again, err := Plan(m, 4096)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range again {
		if g.Layers[0] == 1 && g.Merge() {
			t.Fatalf("merged layer planned for merging again: %s", groupLayers(again))
		}
	}
}

// TestHistoryMissing: without usable history, merged images still get one
// entry per layer, so a re-merge recognises merged layers.
func TestHistoryMissing(t *testing.T) {
	img := testImage(t, genStack(t, 11, 4), false, nil)
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.History = []v1.History{{CreatedBy: "ENV A=1", EmptyLayer: true}}
	img, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Apply(context.Background(), img, []Group{{Layers: []int{0}}, {Layers: []int{1, 2, 3}, CreatedBy: make([]string, 3)}}, 1<<20, WithTempDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out, _ := m.ConfigFile()
	var got []string
	for _, h := range out.History {
		got = append(got, h.CreatedBy)
	}
	if want := []string{"ENV A=1", "", "ov merge: 3 layers (max 1048576 B)"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("history %q, want %q", got, want)
	}
	checkSame(t, "no history", flatten(t, img, specSemantics), m)
	groups, err := Plan(m, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if anyMerge(groups) {
		t.Fatalf("re-plan merges: %s", groupLayers(groups))
	}
}
