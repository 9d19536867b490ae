package bench

import (
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// Vertex names as ov build --progress plain and buildx bake printed them
// in a cold bench run (bench/cmd/ovbench, the bench family).
func TestPhase(t *testing.T) {
	for name, want := range map[string]string{
		// ov
		"[bb-multi linux/amd64] FROM busybox:latest: load metadata": PhaseOther,
		"[bb-multi linux/arm64] FROM busybox:latest":                PhaseOther,
		"[layer arch] load files":                                   PhaseOther,
		"[bb-multi linux/amd64] bootstrap: install task":            PhaseSteps,
		"[bb-multi linux/amd64] bootstrap: user user":               PhaseSteps,
		"[bb-multi linux/amd64] WORKDIR /home/user":                 PhaseSteps,
		"[bb-multi arch linux/amd64] root.yml":                      PhaseSteps,
		"[deb-parent hello-node] package.json":                      PhaseSteps,
		"[bb-multi arch linux/amd64] diff":                          PhaseDiffs,
		"[deb-parent] diff of attached steps":                       PhaseDiffs,
		"[deb-parent web] foundation":                               PhaseMerges,
		"[bb-multi linux/amd64] merge layers":                       PhaseMerges,
		"[bb-multi linux/arm64] check detached layers":              PhaseCheck,
		"[deb-child] diff on parent":                                PhaseDiffs,
		"[deb-child] on parent":                                     PhaseMerges,
		"[deb-parent] merge for children":                           PhaseMerges,
		"[internal] setting cache mount permissions":                PhaseOther,
		"exporting to image":                                        PhaseExport,
		"[deb-parent] encoding layers":                              PhaseExport, // ov's side of the export
		"[deb-parent] pushing 127.0.0.1:5/bench/deb-parent:bench":   PhaseExport,
		"[deb-parent] writing OCI layout /tmp/x/deb-parent":         PhaseExport,
		"[deb-parent] docker load 127.0.0.1:5/bench/deb-parent:1":   PhaseExport,
		// bake
		"[internal] load local bake definitions":                                    PhaseOther,
		"[deb-parent internal] load build definition from Containerfile":            PhaseOther,
		"[deb-parent internal] load metadata for docker.io/library/debian:bookworm": PhaseOther,
		"[deb-parent context layer-marker] load .dockerignore":                      PhaseOther,
		"[deb-parent 1/14] FROM docker.io/library/debian:bookworm@sha256:0123":      PhaseOther,
		"[deb-parent 5/14] RUN --mount=type=cache,dst=/var/cache/apt apt-get":       PhaseSteps,
		"[deb-parent 6/14] COPY --from=layer-marker marker.txt /opt/marker/":        PhaseSteps,
		"exporting cache to registry":                                               PhaseExport,
		"resolve image config for docker-image://docker.io/library/debian":          PhaseOther,
	} {
		if got := Phase(name); got != want {
			t.Errorf("Phase(%q) = %q, want %q", name, got, want)
		}
	}
	for id, want := range map[string]string{
		"exporting layers":                 PartCompress,
		"pushing layers":                   PartPush,
		"pushing manifest for 127.0.0.1:5": PartPush,
		"exporting manifest sha256:0123":   "",
	} {
		if got := ExportPart(id); got != want {
			t.Errorf("ExportPart(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestBreakdownOf(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	at := func(s int) *time.Time { x := t0.Add(time.Duration(s) * time.Second); return &x }
	v := func(d, name string, start, end int) *client.Vertex {
		return &client.Vertex{Digest: digest.FromString(d), Name: name, Started: at(start), Completed: at(end)}
	}
	shared := v("s", "[p a] root.yml", 0, 10)
	parent := Progress{Start: *at(0), End: *at(30), Vertices: []*client.Vertex{
		{Digest: shared.Digest, Name: shared.Name, Started: at(0)}, // in progress, then done
		shared,
		v("t", "[p b] root.yml", 2, 8),     // overlaps a: union 10 s, sum 16 s
		v("d", "[p a] diff", 10, 11),       //
		v("m", "[p] merge layers", 11, 14), //
		v("c", "[p] check detached layers", 11, 13),
		v("e", "exporting to image", 28, 29), // its last part; its statuses start at 14
		{Digest: digest.FromString("cached"), Name: "[p c] root.yml", Started: at(1), Completed: at(1), Cached: true},
	}, Statuses: []*client.VertexStatus{
		{ID: "exporting layers", Vertex: digest.FromString("e"), Started: at(14), Completed: at(20)},
		{ID: "pushing layers", Vertex: digest.FromString("e"), Started: at(20), Completed: at(28)},
		{ID: "pushing layers", Vertex: digest.FromString("d"), Started: at(10), Completed: at(11)}, // not an export
	}}
	b := BreakdownOf("p", parent)
	want := map[string][2]int{ // union, sum
		PhaseSteps: {10, 16}, PhaseDiffs: {1, 1}, PhaseMerges: {3, 3}, PhaseCheck: {2, 2}, PhaseExport: {15, 15},
		PartCompress: {6, 6}, PartPush: {8, 8},
	}
	for ph, w := range want {
		if b.Union[ph] != time.Duration(w[0])*time.Second || b.Sum[ph] != time.Duration(w[1])*time.Second {
			t.Errorf("%s: union %v sum %v, want %ds %ds", ph, b.Union[ph], b.Sum[ph], w[0], w[1])
		}
	}
	if len(b.Sum) != len(want) {
		t.Errorf("phases %v, want those of %v", b.Sum, want)
	}
	if b.Wall != 30*time.Second || b.Idle != time.Second { // 29-30 s
		t.Errorf("wall %v idle %v, want 30s 1s", b.Wall, b.Idle)
	}

	// ov's side of an export (from its rawjson progress): encoding is
	// compression, pushing push.
	own := Progress{Start: *at(29), End: *at(40), Vertices: []*client.Vertex{
		v("enc", "[p] encoding layers", 29, 33), v("push", "[p] pushing r/p:1", 33, 40)}}
	o := BreakdownOf("p", parent, own)
	if o.Union[PartCompress] != 10*time.Second || o.Union[PartPush] != 15*time.Second || o.Union[PhaseExport] != 26*time.Second || o.Idle != 0 {
		t.Errorf("with ov's side: compression %v push %v export %v idle %v, want 10s 15s 26s 0s", o.Union[PartCompress], o.Union[PartPush], o.Union[PhaseExport], o.Idle)
	}

	// A child's build shares the parent's step: the family counts it once.
	child := Progress{Start: *at(1), End: *at(40), Vertices: []*client.Vertex{shared, v("k", "[k x] root.yml", 30, 35)}}
	f := BreakdownOf("family", parent, child)
	if f.Sum[PhaseSteps] != 21*time.Second || f.Union[PhaseSteps] != 15*time.Second || f.Wall != 40*time.Second {
		t.Errorf("family: steps sum %v union %v wall %v, want 21s 15s 40s", f.Sum[PhaseSteps], f.Union[PhaseSteps], f.Wall)
	}
}
