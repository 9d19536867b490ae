package main

import (
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/overthink/ov/internal/testenv"
)

// provenance is what the test reads of an in-toto SLSA v1 statement.
type provenance struct {
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate struct {
		BuildDefinition struct {
			ResolvedDependencies []struct {
				URI string `json:"uri"`
			} `json:"resolvedDependencies"`
			ExternalParameters struct {
				Request struct {
					Locals []struct {
						Name string `json:"name"`
					} `json:"locals"`
				} `json:"request"`
			} `json:"externalParameters"`
		} `json:"buildDefinition"`
	} `json:"predicate"`
}

// ov build --push attaches BuildKit's provenance attestation by default
// (the solver makes it for ov's own LLB): the pushed index holds an
// attestation manifest for the image naming its inputs (the base, the
// task archive, the layer's files); the next build of the same is up to
// date; --provenance=false pushes the bare image.
func TestProvenance(t *testing.T) {
	testenv.SkipShort(t, "two ov builds pushed")
	envFlags := buildEnv(t)
	env := testenv.Get(t)
	dir := bbProject(t, env.Registry+"/prov", "stamp")
	build := func(args ...string) string {
		t.Helper()
		_, stderr, code := ov(t, append(append([]string{"-C", dir, "build", "--progress", "quiet", "--tag", "v1", "--push"}, envFlags...), args...)...)
		if code != 0 {
			t.Fatalf("ov build %v: exit %d:\n%s", args, code, stderr)
		}
		return stderr
	}
	build()
	ref, err := name.ParseReference(env.Registry+"/prov/bb:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var image, att *v1.Descriptor
	for i, d := range im.Manifests {
		switch {
		case d.Annotations["vnd.docker.reference.type"] == "attestation-manifest":
			att = &im.Manifests[i]
		case d.Platform != nil && d.Platform.OS == "linux":
			image = &im.Manifests[i]
		}
	}
	if image == nil || att == nil || len(im.Manifests) != 2 {
		t.Fatalf("index manifests %+v: want the image and its attestation", im.Manifests)
	}
	if att.Annotations["vnd.docker.reference.digest"] != image.Digest.String() || att.Platform == nil || att.Platform.OS != "unknown" {
		t.Errorf("attestation descriptor %+v does not refer to the image %s", att, image.Digest)
	}
	stmt := readProvenance(t, idx, att.Digest)
	if stmt.PredicateType != "https://slsa.dev/provenance/v1" || len(stmt.Subject) == 0 || "sha256:"+stmt.Subject[0].Digest["sha256"] != image.Digest.String() {
		t.Errorf("statement %s about %+v, want the image %s", stmt.PredicateType, stmt.Subject, image.Digest)
	}
	var deps, locals []string
	for _, d := range stmt.Predicate.BuildDefinition.ResolvedDependencies {
		deps = append(deps, d.URI)
	}
	for _, l := range stmt.Predicate.BuildDefinition.ExternalParameters.Request.Locals {
		locals = append(locals, l.Name)
	}
	if !slices.ContainsFunc(deps, func(u string) bool { return strings.HasPrefix(u, "pkg:docker/busybox@latest") }) ||
		!slices.ContainsFunc(deps, func(u string) bool { return strings.HasSuffix(u, "task_linux_amd64.tar.gz") }) {
		t.Errorf("resolved dependencies %q: want the base and the task archive", deps)
	}
	if !slices.Contains(locals, "layer-stamp") {
		t.Errorf("locals %q: want the layer's files (layer-stamp)", locals)
	}

	if stderr := build(); !strings.Contains(stderr, "up to date: bb") {
		t.Errorf("the same build again, with its attestation:\n%s", stderr)
	}

	build("--provenance=false")
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.MediaType.IsIndex() {
		t.Errorf("--provenance=false pushed an index (%s)", desc.MediaType)
	}
}

func readProvenance(t *testing.T, idx v1.ImageIndex, d v1.Hash) provenance {
	t.Helper()
	img, err := idx.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("attestation layers %v: %v", layers, err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	var p provenance
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("%v:\n%s", err, b)
	}
	return p
}

// The attestation asked of BuildKit: none with --load (an engine's store
// cannot hold it; one solve exports to every destination) or false.
func TestProvenanceMode(t *testing.T) {
	for _, tc := range []struct {
		cmd  BuildCmd
		want string
	}{
		{BuildCmd{Provenance: "min"}, "min"},
		{BuildCmd{Provenance: "max", Push: true}, "max"},
		{BuildCmd{Provenance: "false", Push: true}, ""},
		{BuildCmd{Provenance: "min", Load: true}, ""},
		{BuildCmd{Provenance: "max", Load: true, Push: true}, ""},
	} {
		if got := tc.cmd.provenance(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.cmd, got, tc.want)
		}
	}
}
