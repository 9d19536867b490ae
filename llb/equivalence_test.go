package llb

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/overthink/ov/baseuser"
	"github.com/overthink/ov/generate"
	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// volatile are paths whose content legitimately differs between any two
// builds of the same step (timestamps, run logs); their type, mode and owner
// are still compared. Everything else must be byte-identical.
var volatile = regexp.MustCompile(`^(` + strings.Join([]string{
	`/var/log/.*`,                   // apt/dpkg logs carry timestamps
	`/var/cache/debconf/.*-old`,     // debconf's previous state, written with timestamps
	`/var/cache/ldconfig/aux-cache`, // ldconfig's cache of file stamps
	`/var/lib/dpkg/status-old`,      // dpkg's backup of the previous status
	`/home/[^/]+/\.npm/_logs/.*`,    // npm debug logs, named by time
	`/home/[^/]+/\.npm/_update-notifier-last-checked`,
	`/root/\.npm/_logs/.*`,
}, "|") + `)$`)

// fsEntry is what equivalence compares of one path.
type fsEntry struct {
	Type     byte
	Mode     int64
	UID, GID int
	Link     string
	SHA256   string
}

func digestFS(t *testing.T, img v1.Image) map[string]fsEntry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]fsEntry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		e := fsEntry{Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid, Link: h.Linkname}
		if h.Typeflag == tar.TypeReg {
			s := sha256.New()
			if _, err := io.Copy(s, tr); err != nil {
				t.Fatal(err)
			}
			e.SHA256 = hex.EncodeToString(s.Sum(nil))
		}
		out[filepath.Clean("/"+h.Name)] = e
	}
}

// diffFS lists the differences between two flattened filesystems.
func diffFS(a, b map[string]fsEntry) []string {
	var out []string
	for _, p := range slices.Sorted(maps.Keys(a)) {
		ea, eb := a[p], b[p]
		if _, ok := b[p]; !ok {
			out = append(out, "only in bake: "+p)
			continue
		}
		if volatile.MatchString(p) {
			ea.SHA256, eb.SHA256 = "", ""
		}
		if ea != eb {
			out = append(out, fmt.Sprintf("%s: bake %+v, ov %+v", p, ea, eb))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[p]; !ok {
			out = append(out, "only in ov build: "+p)
		}
	}
	return out
}

// copyDir copies a project tree (regular files and directories).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(to, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEquivalentToBake builds every image of the e2e family with `docker
// buildx bake` from the generated files and with ov build, on the same
// buildkitd, and compares root filesystems and configs.
func TestEquivalentToBake(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	dir := t.TempDir()
	copyDir(t, filepath.Join(env.RepoRoot, "e2e", "testdata", "family"), dir)
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	users := baseuser.Resolver(baseuser.Options{
		Mirrors:  map[string]string{"docker.io": env.Registry},
		CacheDir: "-",
	})
	plans, err := plan.BuildContext(ctx, p, nil, plan.Options{
		CalVer: spec.CalVer(time.Date(2026, 2, 16, 14, 15, 0, 0, time.UTC)),
		Task:   plan.TaskSource{URL: env.TaskBaseURL, SHA256: env.TaskSHA256},
		Users:  users,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := generate.Write(dir, plans, p); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(dir, ".out") // bake may write only below its directory
	bake := testenv.Bake{Dir: dir, Files: []string{generate.BakePath}}
	for _, pl := range plans {
		bake.Targets = append(bake.Targets, pl.Name)
		bake.Set = append(bake.Set, pl.Name+".output=type=oci,tar=false,dest="+filepath.Join(out, "bake", pl.Name))
	}
	// Cold (the same apt/npm/cargo cache mounts serve both), then warm.
	for _, run := range []string{"cold", "warm"} {
		start := time.Now()
		if log, err := env.Bake(ctx, bake); err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		bakeTime := time.Since(start)
		start = time.Now()
		if _, err := Build(ctx, env.Client(t), BuildOptions{Family: plans, Exporter: OCILayout(filepath.Join(out, "ov"))}); err != nil {
			t.Fatalf("ov build: %v", err)
		}
		t.Logf("%s: bake %s, ov build %s", run, bakeTime.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}

	for _, pl := range plans {
		t.Run(pl.Name, func(t *testing.T) {
			bakeImgs := layoutImages(t, filepath.Join(out, "bake", pl.Name))
			ovImgs := layoutImages(t, filepath.Join(out, "ov", pl.Name))
			if got, want := slices.Sorted(maps.Keys(ovImgs)), slices.Sorted(maps.Keys(bakeImgs)); !slices.Equal(got, want) || len(want) != len(pl.Platforms) {
				t.Fatalf("platforms: ov %q, bake %q", got, want)
			}
			for platform, bi := range bakeImgs {
				oi := ovImgs[platform]
				bc, oc := configOf(t, bi).Config, configOf(t, oi).Config
				if !slices.Equal(bc.Env, oc.Env) {
					t.Errorf("%s Env:\nbake %q\nov   %q", platform, bc.Env, oc.Env)
				}
				if bc.User != oc.User || bc.WorkingDir != oc.WorkingDir {
					t.Errorf("%s User/WorkingDir: bake %q %q, ov %q %q", platform, bc.User, bc.WorkingDir, oc.User, oc.WorkingDir)
				}
				if !maps.Equal(bc.ExposedPorts, oc.ExposedPorts) {
					t.Errorf("%s ExposedPorts: bake %v, ov %v", platform, bc.ExposedPorts, oc.ExposedPorts)
				}
				if !slices.Equal(bc.Cmd, oc.Cmd) || !slices.Equal(bc.Entrypoint, oc.Entrypoint) {
					t.Errorf("%s Cmd/Entrypoint: bake %q %q, ov %q %q", platform, bc.Cmd, bc.Entrypoint, oc.Cmd, oc.Entrypoint)
				}
				diffs := diffFS(digestFS(t, bi), digestFS(t, oi))
				if len(diffs) > 0 {
					t.Errorf("%s: %d filesystem differences:\n%s", platform, len(diffs), strings.Join(diffs[:min(len(diffs), 60)], "\n"))
				}
			}
		})
	}
}
