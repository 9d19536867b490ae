package plan_test

import (
	"maps"
	"testing"

	"github.com/overthink/ov/plan"
)

// What an image says about itself: the labels from images.yml alone, the
// annotations add the epoch (none for now), the origin and the version
// (the tag; the CalVer one for "auto").
func TestDescribe(t *testing.T) {
	o := plan.Origin{Source: "https://example.com/o/r.git", Revision: "abc123"}
	for _, e := range []*plan.Epoch{{Unix: 1700000000}, {Unix: 1700000000, Now: true}} {
		plans, err := plan.Build(family(t), nil, plan.Options{CalVer: "2026.1.0", Epoch: e, Origin: o})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]map[string]string{
			"base": {plan.KeyTitle: "base", plan.KeyLayers: "tools,node", plan.KeyParent: "ubuntu:24.04"},
			"app":  {plan.KeyTitle: "app", plan.KeyLayers: "rust,svc", plan.KeyParent: "ghcr.io/o/base:latest"},
			"leaf": {plan.KeyTitle: "leaf", plan.KeyLayers: "leaf", plan.KeyParent: "ghcr.io/o/app:2.0"},
		}
		version := map[string]string{"base": "2026.1.0", "app": "2.0", "leaf": "2026.1.0"}
		for _, img := range plans {
			w, ok := want[img.Name]
			if !ok {
				continue
			}
			if !maps.Equal(img.Labels, w) {
				t.Errorf("%s: labels %v, want %v", img.Name, img.Labels, w)
			}
			wa := maps.Clone(w)
			wa[plan.KeySource], wa[plan.KeyRevision], wa[plan.KeyVersion] = o.Source, o.Revision, version[img.Name]
			if !e.Now {
				wa[plan.KeyCreated] = "2023-11-14T22:13:20Z"
			}
			if !maps.Equal(img.Annotations, wa) {
				t.Errorf("%s (epoch %+v): annotations %v, want %v", img.Name, *e, img.Annotations, wa)
			}
		}
	}
}
