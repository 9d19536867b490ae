package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/overthink/ov/plan"
)

// DefaultEpoch on a real git checkout: the time of the last commit of
// images.yml and layers/, now when they have uncommitted changes (an
// untracked layer file too) or the project is no checkout. FromGit names
// that commit (none when the epoch is now) and the remote without its
// credentials. The answer is cached per commit checked out, except in a
// shallow clone.
func TestDefaultEpochFromGit(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(2_000_000_000, 0)
	dir := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var head, source string // the commit of the inputs, the remote's URL
	commit := func(when string) {
		t.Helper()
		defer func() {
			out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
			if err != nil {
				t.Fatal(err)
			}
			head = strings.TrimSpace(string(out))
		}()
		for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "c"}} {
			cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
			cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t",
				"GIT_AUTHOR_DATE="+when, "GIT_COMMITTER_DATE="+when, "GIT_CONFIG_GLOBAL=/dev/null")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
	}
	check := func(what string, want plan.Epoch) {
		t.Helper()
		if got := DefaultEpoch(ctx, dir, now); *got != want {
			t.Errorf("%s: epoch %+v, want %+v", what, *got, want)
		}
		wantRev := head
		if want.Now {
			wantRev = ""
		}
		if _, o := FromGit(ctx, dir, now); o.Revision != wantRev || o.Source != source {
			t.Errorf("%s: origin %+v, want revision %q source %q", what, o, wantRev, source)
		}
	}
	nowEpoch := plan.Epoch{Unix: now.Unix(), Now: true}

	write(".gitignore", ".build/\n")
	write("images.yml", "images: {}\n")
	write("layers/a/layer.yml", "name: a\n")
	check("no git checkout", nowEpoch)
	if out, err := exec.Command("git", "init", "-q", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	check("nothing committed", nowEpoch)
	commit("@1600000000 +0000")
	check("clean checkout", plan.Epoch{Unix: 1600000000})

	inputs := head
	write("README.md", "about\n")
	commit("@1650000000 +0000")
	if out, err := exec.Command("git", "-C", dir, "remote", "add", "origin", "https://me:secret@example.com/o/r.git").CombinedOutput(); err != nil {
		t.Fatalf("git remote add: %v\n%s", err, out)
	}
	source = "https://example.com/o/r.git"
	head = inputs
	check("a commit outside images.yml and layers/", plan.Epoch{Unix: 1600000000})
	write("notes.txt", "uncommitted, not an input\n")
	check("an untracked file outside the inputs", plan.Epoch{Unix: 1600000000})

	write("layers/b/layer.yml", "name: b\n")
	check("an untracked layer", nowEpoch)
	commit("@1700000000 +0000")
	check("the layer committed", plan.Epoch{Unix: 1700000000})
	write("images.yml", "images: {x: {}}\n")
	check("images.yml changed", nowEpoch)

	// The answer is cached per commit checked out: a time planted in the
	// cache proves a run on the same commit does not ask git log; a change
	// or another commit is still seen.
	commit("@1750000000 +0000")
	check("committed", plan.Epoch{Unix: 1750000000})
	cache := head + " 1750000000 " + head + "\n"
	if b, err := os.ReadFile(filepath.Join(dir, lastCommitCache)); err != nil || string(b) != cache {
		t.Errorf("cache %q (%v), want %q", b, err, cache)
	}
	write(lastCommitCache, head+" 42 "+head+"\n")
	check("cached", plan.Epoch{Unix: 42})
	write("layers/a/layer.yml", "name: a2\n")
	check("a layer changed, the cache kept", nowEpoch)
	commit("@1800000000 +0000")
	check("the next commit", plan.Epoch{Unix: 1800000000})

	// A shallow clone's history may yet grow: its answer is not cached.
	shallow := filepath.Join(t.TempDir(), "shallow")
	if out, err := exec.Command("git", "clone", "-q", "--depth", "1", "file://"+dir, shallow).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	if got := DefaultEpoch(ctx, shallow, now); *got != (plan.Epoch{Unix: 1800000000}) {
		t.Errorf("shallow clone: epoch %+v", *got)
	}
	if _, err := os.Stat(filepath.Join(shallow, lastCommitCache)); !os.IsNotExist(err) {
		t.Errorf("a shallow clone's answer is cached: %v", err)
	}
}

func TestParseEpoch(t *testing.T) {
	if e, err := ParseEpoch("0"); err != nil || *e != (plan.Epoch{Unix: 0, Explicit: true}) {
		t.Errorf("0: %v %v", e, err)
	}
	for _, bad := range []string{"-1", "1.5", "yesterday", " 1"} {
		if _, err := ParseEpoch(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
