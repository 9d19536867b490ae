package main

import (
	"strings"
	"testing"

	"github.com/overthink/ov/internal/builddir"
	"github.com/overthink/ov/llb"
	"github.com/overthink/ov/plan"
)

func TestBuildVerifyFlags(t *testing.T) {
	for _, flag := range []string{"--push", "--load", "--output=oci:x", "--no-detach", "--explain"} {
		_, stderr, code := ov(t, "-C", "testdata/project", "build", "--verify", flag)
		name, _, _ := strings.Cut(flag, "=")
		if code != 1 || !strings.Contains(stderr, "does not combine with "+name+"\n") {
			t.Errorf("--verify %s: exit %d, stderr %q", flag, code, stderr)
		}
	}
}

// TestFormatDifference: what --verify prints for a difference: both
// sides, the writers, and the depends line (with the layer's existing
// depends) or the candidates when the images do not tell.
func TestFormatDifference(t *testing.T) {
	img := &plan.Image{Contexts: []plan.Context{{Layer: "r", Rel: "layers/r"}}}
	d := llb.Difference{Image: "app", Platform: "linux/amd64", Path: "/opt/r.txt", Detached: "file a", Chain: "file b",
		Writers: []string{"", "r"}, Fix: llb.Fix{Layer: "r", Depends: []string{"base", "w"}, Add: []string{"w"}}}
	want := "image app (linux/amd64): /opt/r.txt differs\n  detached:  file a\n  one chain: file b\n" +
		"  written by: (base image or image step), r\n  fix: layers/r/layer.yml: depends: [base, w]\n"
	if got := formatDifference(img, d); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	d.Fix = llb.Fix{Layer: "q", Candidates: []string{"a", "b"}}
	if got := formatDifference(img, d); !strings.HasSuffix(got, "  fix: layer q reads a file of a layer it does not depend on, one of: a, b; add it to layers/q/layer.yml: depends\n") {
		t.Errorf("candidates:\n%s", got)
	}
}

// TestVerifyTempIsSwept: what a killed verify leaves under .build/ is a
// temporary name, which the next build's lock sweeps away.
func TestVerifyTempIsSwept(t *testing.T) {
	if !builddir.IsTemp(verifyTemp + "123") {
		t.Errorf("%q is not a name builddir sweeps", verifyTemp+"123")
	}
}
