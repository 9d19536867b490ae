package spec

import (
	"reflect"
	"testing"
)

// An image's volumes come from every layer of its chain, the root image's
// first; a name declared again (in a child's layer or a later layer) keeps
// its first declaration.
func TestVolumesOfChain(t *testing.T) {
	images := yml(`
		images:
			cuda:
				base: "nvidia/cuda:12.4.1-runtime-ubuntu22.04"
				pkg: deb
				layers: [ollama]
			app:
				base: cuda
				layers: [comfy]
			plain:
				base: "debian:bookworm"
				pkg: deb
				layers: [tools]
	`)
	p := mustLoad(t, images, map[string]string{
		"layers/ollama/layer.yml": yml(`
			volumes:
				- name: models
				  path: "~/.ollama/models"
				- name: cache
				  path: $HOME/.cache
		`),
		"layers/comfy/layer.yml": yml(`
			volumes:
				- name: models
				  path: /opt/comfy/models
				- name: outputs
				  path: "${HOME}/ComfyUI/output/"
		`),
	}, "ollama", "comfy", "tools")
	want := []Volume{{"models", "~/.ollama/models"}, {"cache", "$HOME/.cache"}, {"outputs", "${HOME}/ComfyUI/output/"}}
	if got := p.Volumes(p.Image("app")); !reflect.DeepEqual(got, want) {
		t.Errorf("app volumes %+v, want %+v", got, want)
	}
	if got := p.Volumes(p.Image("cuda")); !reflect.DeepEqual(got, want[:2]) {
		t.Errorf("cuda volumes %+v", got)
	}
	if got := p.Volumes(p.Image("plain")); got != nil {
		t.Errorf("plain volumes %+v", got)
	}
}

func TestCheckVolumePath(t *testing.T) {
	for p, ok := range map[string]bool{
		"/data":            true,
		"/data/":           true,
		"~":                true,
		"~/.ollama/models": true,
		"$HOME/x":          true,
		"${HOME}/x":        true,
		"/workspace/sub":   true,
		"data":             false,
		"./data":           false,
		"~root/x":          false,
		"$HOMER/x":         false,
		"/data/$USER":      false,
		"/a:/b":            false,
		"/a,b":             false,
		"/a\nb":            false,
		"/a/../b":          false,
		"/a//b":            false,
		"/a/./b":           false,
		"/":                false,
		"/workspace":       false,
		"/workspace/":      false,
		"":                 false,
	} {
		if err := CheckVolumePath(p, "/home/user"); (err == nil) != ok {
			t.Errorf("CheckVolumePath(%q) = %v, want ok %v", p, err, ok)
		}
	}
}
