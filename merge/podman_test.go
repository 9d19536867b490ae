package merge

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
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
	testenv.SkipShort(t, "needs podman")
	hostdeps.Need(t, "podman")
	dir := t.TempDir()
	e := engine.Engine{
		Bin:     "podman",
		Flags:   []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "overlay", "--events-backend", "file"},
		TempDir: t.TempDir(),
	}
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
