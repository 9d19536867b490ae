package generate_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/docker/buildx/bake"

	"github.com/overthink/ov/generate"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

func TestWritePrunesOnlyGeneratedLeftovers(t *testing.T) {
	dir := copyProject(t, "family")
	seed := map[string]string{
		// A disabled image's and a removed image's output: removed.
		".build/old/Containerfile":     generate.Header(".build/old/Containerfile") + "\nFROM x\n",
		".build/old/fragments/x.conf":  "; x\n",
		".build/gone/Containerfile":    generate.Header(".build/gone/Containerfile") + "\n",
		".build/gone/traefik-routes.y": "x",
		// Stale outputs inside a current image: removed.
		".build/app/traefik-routes.yml":        generate.Header(".build/app/traefik-routes.yml") + "\nhttp: {}\n",
		".build/app/fragments/03-gone.conf":    "; " + generate.Header(".build/app/fragments/03-gone.conf")[2:] + "\n[program:gone]\n",
		".build/base/fragments/00-header.conf": "; " + generate.Header(".build/base/fragments/00-header.conf")[2:] + "\n",
		// Not ov's: kept.
		".build/handmade/Containerfile":     "FROM scratch\n",
		".build/notes.md":                   "mine\n",
		".build/app/fragments/mine.conf":    "[program:mine]\n",
		".build/app/notes.txt":              "mine\n",
		".build/old2/Containerfile":         generate.Header(".build/other/Containerfile") + "\n", // header of another path
		".build/app/traefik-routes.yml.bak": "x",
	}
	for rel, s := range seed {
		write(t, filepath.Join(dir, rel), s)
	}
	generateProject(t, dir)

	exists := func(rel string) bool {
		_, err := os.Stat(filepath.Join(dir, rel))
		return err == nil
	}
	for _, rel := range []string{".build/old", ".build/gone", ".build/app/traefik-routes.yml", ".build/app/fragments/03-gone.conf", ".build/base/fragments"} {
		if exists(rel) {
			t.Errorf("%s was not removed", rel)
		}
	}
	for _, rel := range []string{".build/handmade/Containerfile", ".build/notes.md", ".build/app/fragments/mine.conf", ".build/app/notes.txt", ".build/old2/Containerfile", ".build/app/traefik-routes.yml.bak"} {
		if !exists(rel) {
			t.Errorf("%s (not ov's) was removed", rel)
		}
	}
	for _, img := range []string{"base", "app", "app-extra", "tiny"} {
		if !exists(".build/" + img + "/Containerfile") {
			t.Errorf("no Containerfile for %s", img)
		}
	}
	if exists(".build/old/Containerfile") {
		t.Error("disabled image old was generated")
	}
	hcl, _ := os.ReadFile(filepath.Join(dir, ".build/docker-bake.hcl"))
	if bytes.Contains(hcl, []byte(`"old"`)) {
		t.Error("disabled image old is a bake target")
	}
}

// Planning a subset keeps the other enabled images' files.
func TestWriteSubsetKeepsOtherImages(t *testing.T) {
	dir := copyProject(t, "family")
	_, p := generateProject(t, dir)
	plans, err := plan.Build(p, []string{"app"}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 2 || plans[0].Name != "base" || plans[1].Name != "app" {
		t.Fatalf("subset plan: %v", names(plans))
	}
	if err := generate.Write(dir, plans, p); err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{"base", "app", "app-extra", "tiny"} {
		if _, err := os.Stat(filepath.Join(dir, ".build", img, "Containerfile")); err != nil {
			t.Errorf("%s: %v", img, err)
		}
	}
}

func names(plans []*plan.Image) []string {
	var out []string
	for _, p := range plans {
		out = append(out, p.Name)
	}
	return out
}

// Generates racing each other and readers: every read sees one complete
// version of each file, never a mix or a prefix.
func TestConcurrentWrites(t *testing.T) {
	dir := copyProject(t, "rpm")
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(tag, url string) ([]*plan.Image, map[string][]byte) {
		o := testOptions()
		o.TagOverride = tag
		o.Task.URL = url
		return render(t, p, o)
	}
	plansA, filesA := variant("a", "https://a.example/task")
	plansB, filesB := variant("b", "https://b.example/mirror/of/task")
	watched := []string{generate.BakePath, generate.ContainerfilePath("fedora")}
	for _, rel := range watched {
		if bytes.Equal(filesA[rel], filesB[rel]) {
			t.Fatalf("%s is the same in both variants", rel)
		}
	}

	const writers, rounds, readers = 4, 60, 4
	var done atomic.Bool
	var wg, rg sync.WaitGroup
	var reads atomic.Int64
	errs := make(chan error, writers+readers)
	for r := 0; r < readers; r++ {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for !done.Load() {
				for _, rel := range watched {
					b, err := os.ReadFile(filepath.Join(dir, rel))
					if errors.Is(err, fs.ErrNotExist) {
						continue // before the first write
					}
					if err != nil {
						errs <- err
						return
					}
					reads.Add(1)
					if !bytes.Equal(b, filesA[rel]) && !bytes.Equal(b, filesB[rel]) {
						errs <- errors.New(rel + ": read a partial or mixed file:\n" + string(b))
						return
					}
				}
			}
		}()
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				plans := plansA
				if (i+w)%2 == 1 {
					plans = plansB
				}
				if err := generate.Write(dir, plans, p); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if reads.Load() == 0 {
		t.Error("readers read nothing")
	}
	// No temporary files are left behind.
	filepath.WalkDir(filepath.Join(dir, ".build"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			t.Errorf("leftover temporary file %s", p)
		}
		return nil
	})
}

// buildx reads the generated bake file as intended: targets in order,
// Containerfile paths, tags, platforms and the parent context.
func TestBakeFileAsBuildxReadsIt(t *testing.T) {
	dir := copyProject(t, "family")
	generateProject(t, dir)
	data, err := os.ReadFile(filepath.Join(dir, generate.BakePath))
	if err != nil {
		t.Fatal(err)
	}
	targets, groups, err := bake.ReadTargets(context.Background(), []bake.File{{Name: "docker-bake.hcl", Data: data}},
		[]string{"default"}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// (buildx sorts group members; the order in the file is ours.)
	if got := slices.Sorted(slices.Values(groups["default"].Targets)); strings.Join(got, ",") != "app,app-extra,base,tiny" {
		t.Errorf("default group: %v", got)
	}
	app := targets["app"]
	if app == nil {
		t.Fatalf("no target app: %v", targets)
	}
	if *app.Dockerfile != ".build/app/Containerfile" || *app.Context != "." {
		t.Errorf("app: dockerfile %q context %q", *app.Dockerfile, *app.Context)
	}
	if app.Contexts["ghcr.io/example/base:1.2.3"] != "target:base" || len(app.Contexts) != 1 {
		t.Errorf("app contexts: %v", app.Contexts)
	}
	if strings.Join(app.Tags, ",") != "ghcr.io/example/app:"+calver+",ghcr.io/example/app:latest" {
		t.Errorf("app tags: %v", app.Tags)
	}
	extra := targets["app-extra"]
	if extra.Contexts["ghcr.io/example/app"] != "target:app" || strings.Join(extra.Platforms, ",") != "linux/amd64" {
		t.Errorf("app-extra: contexts %v platforms %v", extra.Contexts, extra.Platforms)
	}
	// The child's Containerfile names the parent the way the context key
	// says after the frontend's normalization.
	cf, _ := os.ReadFile(filepath.Join(dir, ".build/app-extra/Containerfile"))
	if !bytes.Contains(cf, []byte("ARG BASE_IMAGE=ghcr.io/example/app:latest\n")) {
		t.Errorf("app-extra Containerfile does not build FROM the parent's stable ref:\n%s", cf)
	}
}

// The epoch reaches bake as ov build uses it: a default one only stamps the
// output (created, history, file mtimes), an explicit one also reaches the
// steps as a build argument, and SOURCE_DATE_EPOCH in bake's environment
// overrides the one generated (bake then passes it to the steps itself).
// The Containerfiles only declare the argument: they do not change with the
// epoch, so neither does their build cache.
func TestBakeFileEpoch(t *testing.T) {
	dir := copyProject(t, "family")
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	read := func(e *plan.Epoch) (map[string]*bake.Target, map[string][]byte) {
		t.Helper()
		o := testOptions()
		o.Epoch = e
		targets, files, _ := bakeTargets(t, p, o)
		return targets, files
	}
	output := func(tg *bake.Target) string {
		var out []string
		for _, o := range tg.Outputs {
			out = append(out, o.String())
		}
		return strings.Join(out, " ")
	}
	const stamp = "type=image,rewrite-timestamp=true,source-date-epoch="
	created := func(tg *bake.Target) string {
		for _, a := range tg.Annotations {
			if v, ok := strings.CutPrefix(a, "manifest:"+plan.KeyCreated+"="); ok {
				return v
			}
		}
		return ""
	}

	targets, files := read(&plan.Epoch{Unix: 17})
	if got := output(targets["app"]); got != stamp+"17" {
		t.Errorf("default epoch: output %q", got)
	}
	if got := created(targets["app"]); got != "1970-01-01T00:00:17Z" {
		t.Errorf("default epoch: created annotation %q", got)
	}
	if _, ok := targets["app"].Args[plan.EpochEnv]; ok {
		t.Errorf("default epoch: passed to the steps: %v", targets["app"].Args)
	}
	explicit, files2 := read(&plan.Epoch{Unix: 18, Explicit: true})
	if v := explicit["app"].Args[plan.EpochEnv]; v == nil || *v != "18" || output(explicit["app"]) != stamp+"18" {
		t.Errorf("explicit epoch: args %v output %q", explicit["app"].Args, output(explicit["app"]))
	}
	for rel, b := range files {
		if rel == generate.BakePath {
			continue
		}
		if !bytes.Equal(b, files2[rel]) {
			t.Errorf("%s depends on the epoch", rel)
		}
		if strings.HasSuffix(rel, "Containerfile") && !bytes.Contains(b, []byte("FROM ${BASE_IMAGE}\nARG SOURCE_DATE_EPOCH\n")) {
			t.Errorf("%s does not declare SOURCE_DATE_EPOCH in its main stage:\n%s", rel, b)
		}
	}

	t.Setenv(plan.EpochEnv, "19")
	targets, _ = read(&plan.Epoch{Unix: 17})
	if got, c := output(targets["app"]), created(targets["app"]); got != stamp+"19" || c != "1970-01-01T00:00:19Z" {
		t.Errorf("SOURCE_DATE_EPOCH=19 in bake's environment: output %q, created annotation %q", got, c)
	}

	t.Setenv(plan.EpochEnv, "")
	targets, _ = read(&plan.Epoch{Unix: 17})
	if got, c := output(targets["app"]), created(targets["app"]); got != stamp || c != "" {
		t.Errorf("SOURCE_DATE_EPOCH empty in bake's environment (the build's time): output %q, created annotation %q", got, c)
	}
	now, nowFiles := read(&plan.Epoch{Unix: 20, Now: true})
	none, noneFiles := read(nil)
	for what, tg := range map[string]*bake.Target{"epoch now": now["app"], "no epoch": none["app"]} {
		if len(tg.Outputs) != 0 || len(tg.Args) != 0 || created(tg) != "" {
			t.Errorf("%s: outputs %v args %v (bake's own output wanted: a type=image one is exported besides --load's)", what, tg.Outputs, tg.Args)
		}
	}
	if !bytes.Equal(nowFiles[generate.BakePath], noneFiles[generate.BakePath]) {
		t.Errorf("an epoch of now is in the bake file:\n%s", nowFiles[generate.BakePath])
	}

}

// The labels and annotations reach bake as ov build gives them, and no
// value (here a repository URL that tries to close the string, open a
// block or interpolate) adds anything to the bake file: it is one string.
func TestBakeFileDescribes(t *testing.T) {
	dir := copyProject(t, "family")
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	o := testOptions()
	hostile := "https://x/\"]\n}\ntarget \"evil\" {\n  dockerfile = \"${BAKE_CMD_CONTEXT}%{ if true }x%{ endif }\"\n"
	o.Origin = plan.Origin{Source: hostile, Revision: "0123abc"}
	o.Epoch = &plan.Epoch{Unix: 1700000000}
	targets, _, plans := bakeTargets(t, p, o)
	if len(targets) != len(plans) {
		t.Errorf("%d targets for %d images", len(targets), len(plans))
	}
	for _, img := range plans {
		tg := targets[img.Name]
		if tg == nil {
			t.Fatalf("no target %s", img.Name)
		}
		for k, v := range img.Labels {
			if tg.Labels[k] == nil || *tg.Labels[k] != v {
				t.Errorf("%s: label %s = %v, want %q", img.Name, k, tg.Labels[k], v)
			}
		}
		if len(tg.Labels) != len(img.Labels) {
			t.Errorf("%s: labels %v, want %v", img.Name, tg.Labels, img.Labels)
		}
		var want []string
		for _, k := range slices.Sorted(maps.Keys(img.Annotations)) {
			want = append(want, "manifest:"+k+"="+img.Annotations[k])
		}
		if !slices.Equal(tg.Annotations, want) {
			t.Errorf("%s: annotations\n%q, want\n%q", img.Name, tg.Annotations, want)
		}
		if img.Annotations[plan.KeySource] != hostile || img.Annotations[plan.KeyCreated] != "2023-11-14T22:13:20Z" {
			t.Errorf("%s: annotations %q", img.Name, img.Annotations)
		}
	}
}

// render plans p with o and generates its files in memory.
func render(t *testing.T, p *spec.Project, o plan.Options) ([]*plan.Image, map[string][]byte) {
	t.Helper()
	plans, err := plan.Build(p, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	files, err := generate.Files(plans)
	if err != nil {
		t.Fatal(err)
	}
	return plans, files
}

// bakeTargets generates p's files with o and reads the bake file's targets
// as buildx bake does.
func bakeTargets(t *testing.T, p *spec.Project, o plan.Options) (map[string]*bake.Target, map[string][]byte, []*plan.Image) {
	t.Helper()
	plans, files := render(t, p, o)
	targets, _, err := bake.ReadTargets(context.Background(), []bake.File{{Name: "docker-bake.hcl", Data: files[generate.BakePath]}},
		[]string{"default"}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return targets, files, plans
}
