package llb

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	bk "github.com/moby/buildkit/client/llb"

	"github.com/overthink/ov/plan"
)

// tree writes a fixture filesystem under dir: a value "dir" or "dir MODE"
// is a directory, "-> T" a symlink to T, anything else a file's content.
func tree(t *testing.T, dir string, entries map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for p := range entries {
			if !yield(p) {
				return
			}
		}
	}) {
		v, full := entries[p], filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case v == "dir" || strings.HasPrefix(v, "dir "):
			mode := uint64(0o755)
			if m, ok := strings.CutPrefix(v, "dir "); ok {
				mode, _ = strconv.ParseUint(m, 8, 32)
			}
			if err = os.MkdirAll(full, 0o755); err == nil {
				err = os.Chmod(full, os.FileMode(mode))
			}
		case strings.HasPrefix(v, "-> "):
			err = os.Symlink(strings.TrimPrefix(v, "-> "), full)
		default:
			err = os.WriteFile(full, []byte(v), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// with returns base with changes applied: an empty value deletes a path.
func with(base map[string]string, changes map[string]string) map[string]string {
	out := map[string]string{}
	for p, v := range base {
		out[p] = v
	}
	for p, v := range changes {
		if v == "" {
			for q := range out {
				if q == p || strings.HasPrefix(q, p+"/") {
					delete(out, q)
				}
			}
			continue
		}
		out[p] = v
	}
	return out
}

// TestCheckScript runs the check step's script with /bin/sh on the host
// against fixture snapshots laid out as BuildKit mounts them (a diff as
// the changed entries and their parent directories, deletions not shown):
// appends to one file, a deletion against a modification, a symlink
// replaced by a file, directory modes, the attached steps after a group;
// and what must not conflict (a layer and its dependency, the same new
// directory, an untouched file in the chain).
func TestCheckScript(t *testing.T) {
	base := map[string]string{
		"etc": "dir", "etc/shared.conf": "base\n", "etc/motd": "hi\n", "etc/profile": "p\n",
		"srv": "dir", "opt": "dir", "home/u": "dir",
	}
	type grp struct {
		layer    string
		fnd, top map[string]string
		diff     map[string]string // as mounted: no deletions
		chain    int
	}
	g := func(layer string, chain int, fnd map[string]string, changes, diff map[string]string) grp {
		return grp{layer: layer, fnd: fnd, top: with(fnd, changes), diff: diff, chain: chain}
	}
	groups := []grp{
		g("a", 0, base, map[string]string{"etc/shared.conf": "base\na\n"}, map[string]string{"etc": "dir", "etc/shared.conf": "base\na\n"}),
		g("b", 0, base, map[string]string{"etc/shared.conf": "base\nb\n"}, map[string]string{"etc": "dir", "etc/shared.conf": "base\nb\n"}),
		g("c", 0, base, map[string]string{"opt/x/new": "c", "srv": "dir 700"}, map[string]string{"opt": "dir", "opt/x": "dir", "opt/x/new": "c", "srv": "dir 700"}),
		// d depends on c: it sees c's files and may rewrite them.
		g("d", 0, with(base, map[string]string{"opt/x/new": "c"}), map[string]string{"opt/x/new": "d"}, map[string]string{"opt": "dir", "opt/x": "dir", "opt/x/new": "d"}),
		// e adds a file to /srv, which c made 0700: e's /srv is 0755.
		g("e", 0, base, map[string]string{"srv/file": "e"}, map[string]string{"srv": "dir", "srv/file": "e"}),
		// f deletes /etc/motd, g rewrites it.
		g("f", 0, base, map[string]string{"etc/motd": ""}, map[string]string{"etc": "dir"}),
		g("g", 0, base, map[string]string{"etc/motd": "g\n"}, map[string]string{"etc": "dir", "etc/motd": "g\n"}),
		// h and i create the same directory, with files of their own.
		g("h", 0, base, map[string]string{"home/u/.local/bin/h": "h"}, map[string]string{"home": "dir", "home/u": "dir", "home/u/.local": "dir", "home/u/.local/bin": "dir", "home/u/.local/bin/h": "h"}),
		g("i", 0, base, map[string]string{"home/u/.local/bin/i": "i"}, map[string]string{"home": "dir", "home/u": "dir", "home/u/.local": "dir", "home/u/.local/bin": "dir", "home/u/.local/bin/i": "i"}),
		// k makes a symlink, l a file at the same path.
		g("k", 0, base, map[string]string{"opt/link": "-> /etc/motd"}, map[string]string{"opt": "dir", "opt/link": "-> /etc/motd"}),
		g("l", 0, base, map[string]string{"opt/link": "file"}, map[string]string{"opt": "dir", "opt/link": "file"}),
		// After the attached step 1 (which rewrites /etc/profile and adds
		// /etc/new): m appends to /etc/profile before it, n writes a file
		// of its own, o rewrites /etc/profile after it.
		g("m", 0, base, map[string]string{"etc/profile": "p\nm\n"}, map[string]string{"etc": "dir", "etc/profile": "p\nm\n"}),
		g("n", 0, base, map[string]string{"etc/n.conf": "n"}, map[string]string{"etc": "dir", "etc/n.conf": "n"}),
	}
	c1 := with(base, map[string]string{"etc/profile": "p\nattached\n", "etc/new": "x"})
	groups = append(groups, g("o", 1, c1, map[string]string{"etc/profile": "o\n"}, map[string]string{"etc": "dir", "etc/profile": "o\n"}))
	// The groups from m on have the attached step after them: give the
	// earlier ones none by putting them at the end of the chain.
	for i := range groups[:11] {
		groups[i].chain = 1
		groups[i].fnd, groups[i].top = with(c1, mapDiff(groups[i].fnd, base)), with(c1, mapDiff(groups[i].top, base))
	}

	root := t.TempDir()
	marks := []map[string]string{base, c1}
	for k, m := range marks {
		tree(t, filepath.Join(root, "c"+strconv.Itoa(k)), m)
	}
	tree(t, filepath.Join(root, "end"), c1)
	var gs []group
	for i, gr := range groups {
		n := strconv.Itoa(i)
		tree(t, filepath.Join(root, "g"+n), gr.diff)
		tree(t, filepath.Join(root, "f"+n), gr.fnd)
		tree(t, filepath.Join(root, "t"+n), gr.top)
		gs = append(gs, group{layer: gr.layer, fnd: bk.Scratch(), top: bk.Scratch(), diff: bk.Scratch(), chain: gr.chain})
	}
	for _, d := range []string{"w", "out"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := &compiler{img: &plan.Image{Name: "x", Depends: map[string][]string{"d": {"c"}}}}
	st := c.check(gs, []bk.State{bk.Image("busybox"), bk.Image("busybox")}, bk.Image("busybox"))
	_, _, execs := opsOf(t, st)
	script := strings.ReplaceAll(execs[len(execs)-1], checkDir, root)
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("check script: %v\n%s", err, out)
	}
	report, err := os.ReadFile(filepath.Join(root, "out", CheckFile))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConflicts(report)
	if err != nil {
		t.Fatal(err)
	}
	want := []Conflict{
		{"a", "b", "/etc/shared.conf"},
		{"c", "e", "/srv"},
		{"f", "g", "/etc/motd"},
		{"k", "l", "/opt/link"},
		{"m", "", "/etc/profile"},
		{"m", "o", "/etc/profile"}, // o runs after the attached step, without m
	}
	slices.SortFunc(got, func(x, y Conflict) int { return strings.Compare(x.Layer+x.Other, y.Layer+y.Other) })
	if !slices.Equal(got, want) {
		t.Errorf("conflicts:\n got %+v\nwant %+v\nreport:\n%s", got, want, report)
	}
}

// mapDiff is what m has that base does not have the same.
func mapDiff(m, base map[string]string) map[string]string {
	out := map[string]string{}
	for p, v := range m {
		if base[p] != v {
			out[p] = v
		}
	}
	for p := range base {
		if _, ok := m[p]; !ok {
			out[p] = ""
		}
	}
	return out
}

// TestParseConflicts: the report's lines, and the line an image without a
// tool the check needs gives.
func TestParseConflicts(t *testing.T) {
	got, err := ParseConflicts([]byte("a b /etc/x y\nc - /etc/profile\n"))
	if want := []Conflict{{"a", "b", "/etc/x y"}, {"c", "", "/etc/profile"}}; err != nil || !slices.Equal(got, want) {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	var tools *CheckTools
	if _, err := ParseConflicts([]byte("! awk\n")); !errors.As(err, &tools) || tools.Missing != "awk" {
		t.Errorf("missing tool: %v", err)
	}
	if _, err := ParseConflicts([]byte("a b\n")); err == nil {
		t.Error("a malformed line parsed")
	}
}

// TestFix: the depends line verify suggests names the earlier writers the
// last one does not see, else the one layer it can have read; none when
// the last writer is not a layer or every earlier layer is seen.
func TestFix(t *testing.T) {
	img := &plan.Image{
		Steps: []plan.Step{
			{Layer: "a", Detach: true}, {Layer: "pkg"}, {Layer: "b", Detach: true}, {Layer: "c", Detach: true}, {Layer: "d", Detach: true},
		},
		Depends: map[string][]string{"c": {"b"}},
	}
	for _, tt := range []struct {
		writers []string
		want    Fix
	}{
		{[]string{"a", "pkg", "d"}, Fix{Layer: "d", Add: []string{"a"}, Depends: []string{"a"}}},
		{[]string{"b", "c"}, Fix{Layer: "c", Add: []string{"a"}, Depends: []string{"b", "a"}}}, // c sees b: it read a
		{[]string{"c"}, Fix{Layer: "c", Add: []string{"a"}, Depends: []string{"b", "a"}}},      // c can have read only a
		{[]string{"d"}, Fix{Layer: "d", Candidates: []string{"a", "b", "c"}}},
		{[]string{"a", ""}, Fix{}},
		{[]string{"pkg"}, Fix{Layer: "pkg", Add: []string{"a"}, Depends: []string{"a"}}}, // attached: sees no detached layer
	} {
		got := fix(img, tt.writers)
		if got.Layer != tt.want.Layer || !slices.Equal(got.Add, tt.want.Add) || !slices.Equal(got.Depends, tt.want.Depends) || !slices.Equal(got.Candidates, tt.want.Candidates) {
			t.Errorf("fix(%q) = %+v, want %+v", tt.writers, got, tt.want)
		}
	}
}
