package main

import (
	"testing"

	"github.com/overthink/ov/spec"
)

func TestRunRef(t *testing.T) {
	for _, tc := range []struct {
		img  spec.Image
		tag  string
		want string
	}{
		{spec.Image{Name: "app", Registry: "ghcr.io/o", Tag: "auto"}, "", "ghcr.io/o/app:latest"},
		{spec.Image{Name: "app", Registry: "ghcr.io/o", Tag: "auto"}, "2026.47.905", "ghcr.io/o/app:2026.47.905"},
		{spec.Image{Name: "app", Tag: "nightly"}, "", "app:nightly"},
		{spec.Image{Name: "app", Tag: "1.2.3"}, "", "app:1.2.3"},
	} {
		if got := runRef(&tc.img, tc.tag); got != tc.want {
			t.Errorf("runRef(%+v, %q) = %q, want %q", tc.img, tc.tag, got, tc.want)
		}
	}
}

// --max-mb > images.yml merge.max_mb > 128.
func TestMergeMaxMB(t *testing.T) {
	withMerge := &spec.Image{Merge: &spec.Merge{Auto: true, MaxMB: 64}}
	for _, tc := range []struct {
		img  *spec.Image
		flag int
		want int
	}{
		{withMerge, 0, 64},
		{withMerge, 512, 512},
		{&spec.Image{}, 0, 128},
		{&spec.Image{}, 32, 32},
		{&spec.Image{Merge: &spec.Merge{Auto: true}}, 0, 128},
	} {
		if got := mergeMaxMB(tc.img, tc.flag); got != tc.want {
			t.Errorf("mergeMaxMB(%+v, %d) = %d, want %d", tc.img.Merge, tc.flag, got, tc.want)
		}
	}
}
