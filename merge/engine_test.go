package merge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/overthink/ov/engine"
)

// The test binary doubles as a fake docker when fakeEnv names its store: a
// directory of docker-archives, one per ref. It records every argv.
const fakeEnv = "OV_MERGE_FAKE_ENGINE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(fakeEnv); dir != "" {
		os.Exit(fakeEngine(dir, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func archivePath(dir, ref string) string { return filepath.Join(dir, url.PathEscape(ref)+".tar") }

func fakeEngine(dir string, args []string) int {
	log, _ := os.OpenFile(filepath.Join(dir, "argv.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	json.NewEncoder(log).Encode(args)
	log.Close()
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", a...)
		return 1
	}
	switch args[0] {
	case "save":
		f, err := os.Open(archivePath(dir, args[len(args)-1]))
		if err != nil {
			return fail("Error response from daemon: reference does not exist: %s", args[len(args)-1])
		}
		defer f.Close()
		io.Copy(os.Stdout, f)
	case "load":
		if _, err := os.Stat(filepath.Join(dir, "fail-load")); err == nil {
			return fail("Error processing tar file: unexpected EOF")
		}
		f, _ := os.Create(filepath.Join(dir, "loaded.tar"))
		if _, err := io.Copy(f, os.Stdin); err != nil {
			return fail("reading stdin: %v", err)
		}
		f.Close()
		fmt.Println("Loaded image")
	case "image": // image inspect --format {{.Id}} {{len .RootFS.Layers}} ref: the ref is the ID
		img, err := tarball.ImageFromPath(archivePath(dir, args[len(args)-1]), nil)
		if err != nil {
			return fail("Error: No such image: %s", args[len(args)-1])
		}
		layers, _ := img.Layers()
		fmt.Printf("%s %d\n", args[len(args)-1], len(layers))
	case "history": // docker's rows: newest first, 0 for an empty layer
		img, err := tarball.ImageFromPath(archivePath(dir, args[len(args)-1]), nil)
		if err != nil {
			return fail("Error: No such image: %s", args[len(args)-1])
		}
		cfg, _ := img.ConfigFile()
		layers, _ := img.Layers()
		var rows []string
		for _, h := range cfg.History {
			var size int64
			if !h.EmptyLayer {
				size, _ = layers[0].Size()
				layers = layers[1:]
			}
			createdBy, _ := json.Marshal(h.CreatedBy)
			rows = append([]string{fmt.Sprintf("%d %s", size, createdBy)}, rows...)
		}
		fmt.Println(strings.Join(rows, "\n"))
	case "tag":
		os.WriteFile(archivePath(dir, args[2]), nil, 0o644)
	default:
		return fail("unknown command %q", args[0])
	}
	return 0
}

func argvLog(t *testing.T, dir string) []string {
	b, _ := os.ReadFile(filepath.Join(dir, "argv.log"))
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var args []string
		if line != "" {
			json.Unmarshal([]byte(line), &args)
			out = append(out, strings.Join(args, " "))
		}
	}
	return out
}

// fakeStore puts img into a fake engine store under ref.
func fakeStore(t *testing.T, ref string, layers [][]byte) (dir string, e engine.Engine) {
	t.Helper()
	dir = t.TempDir()
	t.Setenv(fakeEnv, dir)
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(archivePath(dir, ref), tag, testImage(t, layers, false, nil)); err != nil {
		t.Fatal(err)
	}
	return dir, engine.Engine{Bin: os.Args[0], TempDir: t.TempDir()}
}

// metadataArgv is FromEngine's engine calls before it decides to save.
func metadataArgv(e engine.Engine, ref string) []string {
	return []string{strings.Join(e.LayersArgv(ref)[1:], " "), strings.Join(e.HistoryArgv(ref)[1:], " ")}
}

func TestEngineMerge(t *testing.T) {
	const ref = "localhost/ov-test:2026.1.2"
	layers := genStack(t, 5, 6)
	dir, e := fakeStore(t, ref, layers)
	var report, stderr bytes.Buffer
	e.Stderr = &stderr
	ctx := context.Background()
	groups, err := FromEngine(ctx, e, Request{Ref: ref, MaxBytes: 1 << 40, Report: &report})
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || !groups[0].Merge() {
		t.Fatalf("plan %s, want all layers merged", groupLayers(groups))
	}
	if !strings.Contains(report.String(), "6 layers -> 1 layers") || !strings.Contains(stderr.String(), "Loaded image") {
		t.Fatalf("report %q, engine output %q", report.String(), stderr.String())
	}
	if got := argvLog(t, dir); !slices.Equal(got, append(metadataArgv(e, ref), "save "+ref, "load")) {
		t.Fatalf("engine calls %q", got)
	}
	if left, _ := os.ReadDir(e.TempDir); len(left) != 0 {
		t.Fatalf("temp files left: %v", left)
	}

	// The loaded archive is tagged ref and holds the same filesystem.
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(filepath.Join(dir, "loaded.tar")) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{ref}) {
		t.Fatalf("loaded archive manifest %+v", m)
	}
	loaded, err := tarball.ImageFromPath(filepath.Join(dir, "loaded.tar"), nil)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := tarball.ImageFromPath(archivePath(dir, ref), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, "engine round trip", flatten(t, orig, specSemantics), loaded)

	// Merging the merged image again loads nothing, and saves nothing: its
	// one layer is all there is to keep.
	if err := os.Rename(filepath.Join(dir, "loaded.tar"), archivePath(dir, ref)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "argv.log"))
	if groups, err = FromEngine(ctx, e, Request{Ref: ref, MaxBytes: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	if anyMerge(groups) {
		t.Fatalf("second merge planned %s", groupLayers(groups))
	}
	if got := argvLog(t, dir); !slices.Equal(got, metadataArgv(e, ref)) {
		t.Fatalf("second merge: engine calls %q", got)
	}

	// Nothing to merge but a new name: tag it.
	os.Remove(filepath.Join(dir, "argv.log"))
	if _, err = FromEngine(ctx, e, Request{Ref: ref, Tag: ref + "-merged", MaxBytes: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	if got := argvLog(t, dir); !slices.Equal(got, append(metadataArgv(e, ref), "tag "+ref+" "+ref+"-merged")) {
		t.Fatalf("tag: engine calls %q", got)
	}
}

func TestEngineDryRun(t *testing.T) {
	const ref = "localhost/dry:1"
	dir, e := fakeStore(t, ref, genStack(t, 6, 3))
	var report bytes.Buffer
	groups, err := FromEngine(context.Background(), e, Request{Ref: ref, MaxBytes: 1 << 40, DryRun: true, Report: &report})
	if err != nil || !anyMerge(groups) {
		t.Fatalf("groups %v, err %v", groupLayers(groups), err)
	}
	if got := argvLog(t, dir); !slices.Equal(got, []string{"save " + ref}) {
		t.Fatalf("dry run: engine calls %q", got)
	}
	if !strings.Contains(report.String(), "[merge 1]") {
		t.Fatalf("report:\n%s", report.String())
	}
}

func TestEngineErrors(t *testing.T) {
	const ref = "localhost/err:1"
	dir, e := fakeStore(t, ref, genStack(t, 7, 3))
	ctx := context.Background()

	_, err := FromEngine(ctx, e, Request{Ref: "localhost/missing:1", MaxBytes: 1 << 40})
	if err == nil || !strings.Contains(err.Error(), "save localhost/missing:1: exit status 1: Error response from daemon: reference does not exist") {
		t.Fatalf("missing image: %v", err)
	}

	os.WriteFile(filepath.Join(dir, "fail-load"), nil, 0o644)
	_, err = FromEngine(ctx, e, Request{Ref: ref, MaxBytes: 1 << 40})
	if err == nil || !strings.Contains(err.Error(), "load: exit status 1: Error processing tar file") {
		t.Fatalf("failing load: %v", err)
	}

	_, err = FromEngine(ctx, e, Request{Ref: ref, Tag: "Not A Tag!", MaxBytes: 1 << 40})
	if err == nil || !strings.Contains(err.Error(), `tag "Not A Tag!"`) {
		t.Fatalf("bad tag: %v", err)
	}
	if left, _ := os.ReadDir(e.TempDir); len(left) != 0 {
		t.Fatalf("temp files left after errors: %v", left)
	}

	missing := engine.Engine{Bin: filepath.Join(t.TempDir(), "no-such-engine")}
	if _, err := FromEngine(ctx, missing, Request{Ref: ref, MaxBytes: 1 << 40}); err == nil || !strings.Contains(err.Error(), "no-such-engine") {
		t.Fatalf("missing engine binary: %v", err)
	}
}
