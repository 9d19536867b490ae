package merge

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overthink/ov/engine"
	"github.com/overthink/ov/internal/hostdeps"
	"github.com/overthink/ov/internal/testenv"
)

// TestPodman runs FromEngine against a real podman (private storage in a
// temp dir) and checks that podman unpacks the merged image, through its
// overlay driver, to the same filesystem as the original, and the same as
// the reference flattener.
func TestPodman(t *testing.T) {
	e := podmanEngine(t)
	ctx := context.Background()
	podman := func(args ...string) []byte {
		t.Helper()
		var stderr bytes.Buffer
		cmd := exec.Command("podman", append(e.Flags, args...)...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("podman %s: %v: %s", strings.Join(args, " "), err, stderr.String())
		}
		return out
	}
	// export flattens ref the way podman unpacks it.
	export := func(ref string) fsys {
		t.Helper()
		id := strings.TrimSpace(string(podman("create", ref, "/none")))
		out := podman("export", id)
		podman("rm", id)
		fs := fsys{}
		fs.applyLayer(t, readEntries(t, bytes.NewReader(out)), inOrder)
		for p, m := range fs {
			if top, _, _ := strings.Cut(p, "/"); !slices.Contains(names, top) { // podman's own /etc, /dev, ...
				delete(fs, p)
			}
			m.mode &= 0o7777 // export sets type bits in the mode
		}
		return fs
	}
	for seed := range uint64(6) {
		ref := fmt.Sprintf("localhost/ov-merge-test:%d", seed)
		img := testImage(t, genStack(t, 100+seed, 6), seed%2 == 0, nil)
		if err := e.Load(ctx, img, ref); err != nil {
			t.Fatal(err)
		}
		// Export has second-resolution times and no symlink modes.
		want := flatten(t, img, specSemantics)
		for _, m := range want {
			m.mtime = m.mtime.Truncate(time.Second)
			if m.typ == '2' {
				m.mode = 0o777
			}
		}
		if d := diffFS(want, export(ref)); d != "" {
			t.Fatalf("seed %d: podman unpacks the original differently from the reference flattener:\n%s", seed, d)
		}
		for _, max := range []int64{1 << 40, 1 << 10} {
			merged := fmt.Sprintf("%s-merged-%d", ref, max)
			groups, err := FromEngine(ctx, e, Request{Ref: ref, Tag: merged, MaxBytes: max})
			if err != nil {
				t.Fatal(err)
			}
			if max == 1<<40 && len(groups) != 1 {
				t.Fatalf("seed %d: plan %s, want one group", seed, groupLayers(groups))
			}
			if d := diffFS(want, export(merged)); d != "" {
				t.Fatalf("seed %d max %d: podman unpacks the merged image differently:\n%s", seed, max, d)
			}
		}
	}
	if left, _ := os.ReadDir(e.TempDir); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}

// podmanEngine is podman on private storage in a temp dir.
func podmanEngine(t *testing.T) engine.Engine {
	t.Helper()
	testenv.SkipShort(t, "needs podman")
	hostdeps.Need(t, "podman")
	dir := t.TempDir()
	return engine.Engine{
		Bin:     "podman",
		Flags:   []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "overlay", "--events-backend", "file"},
		TempDir: t.TempDir(),
	}
}

// recorder is a Runner that runs commands and records their argv.
type recorder struct {
	mu   sync.Mutex
	argv [][]string
}

func (r *recorder) Run(ctx context.Context, argv []string, stdio engine.Stdio) (int, error) {
	r.mu.Lock()
	r.argv = append(r.argv, argv)
	r.mu.Unlock()
	return engine.ExecRunner{}.Run(ctx, argv, stdio)
}

func (r *recorder) saved(e engine.Engine) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.argv {
		if len(a) > len(e.Flags)+1 && a[len(e.Flags)+1] == "save" {
			return true
		}
	}
	return false
}

// TestPodmanKeptWithoutSave re-merges merged images in a real podman:
// FromEngine skips the save exactly when every layer next to another one
// is an ov merge of a large enough limit, and its plan is always the one
// Plan makes of the saved image.
func TestPodmanKeptWithoutSave(t *testing.T) {
	e := podmanEngine(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	small := func(i int) []byte {
		return tarBytes(t, []genEntry{file(fmt.Sprintf("small-%d.txt", i), strings.Repeat("small ", 20))})
	}
	big := func(i int) []byte { // incompressible: 64 KiB compressed too
		b := make([]byte, 64<<10)
		for k := range b {
			b[k] = byte(r.Uint32())
		}
		return tarBytes(t, []genEntry{{hdr: file(fmt.Sprintf("big-%d.bin", i), "").hdr, body: b}})
	}
	const max = 16 << 10
	for _, tc := range []struct {
		name   string
		layers [][]byte
		// max of the re-merge -> whether it may skip the save
		noSave map[int64]bool
	}{
		// merged: [ov merge] big [ov merge]
		{"apart", [][]byte{small(0), small(1), big(2), small(3), small(4)}, map[int64]bool{max: true, max / 2: true, 2 * max: false}},
		// merged: [ov merge] big big [ov merge]: the bigs are neighbours
		{"neighbours", [][]byte{small(0), small(1), big(2), big(3), small(4), small(5)}, map[int64]bool{max: false}},
		// merged: one layer
		{"one", [][]byte{small(0), small(1), small(2)}, map[int64]bool{max: true, 2 * max: true}},
	} {
		ref := "localhost/ov-kept-test:" + tc.name
		if err := e.Load(ctx, testImage(t, tc.layers, false, nil), ref); err != nil {
			t.Fatal(err)
		}
		merged := ref + "-merged"
		if _, err := FromEngine(ctx, e, Request{Ref: ref, Tag: merged, MaxBytes: max}); err != nil {
			t.Fatal(err)
		}
		for max2, noSave := range tc.noSave {
			rec := &recorder{}
			re := e
			re.Runner = rec
			var report bytes.Buffer
			got, err := FromEngine(ctx, re, Request{Ref: merged, MaxBytes: max2, Report: &report})
			if err != nil {
				t.Fatal(err)
			}
			if rec.saved(e) == noSave {
				t.Errorf("%s max %d: saved %v, want %v; engine calls %q", tc.name, max2, rec.saved(e), !noSave, rec.argv)
			}
			a, err := e.Save(ctx, merged)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Plan(a, max2)
			a.Close()
			if err != nil {
				t.Fatal(err)
			}
			if groupLayers(got) != groupLayers(want) || anyMerge(got) {
				t.Errorf("%s max %d: plan %s, Plan of the saved image %s", tc.name, max2, groupLayers(got), groupLayers(want))
			}
			if noSave && !strings.Contains(report.String(), "(not saved: ") {
				t.Errorf("%s max %d: report does not say why sizes are missing:\n%s", tc.name, max2, report.String())
			}
		}
	}
	if left, _ := os.ReadDir(e.TempDir); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}
}
