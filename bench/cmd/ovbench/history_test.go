package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

func TestOvPhases(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Second), t0.Add(3*time.Second)
	line := func(vs ...*client.Vertex) string {
		b, err := json.Marshal(client.SolveStatus{Vertexes: vs})
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	enc := &client.Vertex{Digest: digest.FromString("e"), Name: "[deb-parent] encoding layers", Started: &t0}
	done := *enc
	done.Completed = &t1
	push := &client.Vertex{Digest: digest.FromString("p"), Name: "[deb-parent] pushing r/deb-parent:bench", Started: &t1, Completed: &t2}
	step := &client.Vertex{Digest: digest.FromString("s"), Name: "[deb-parent marker] root.yml", Started: &t0, Completed: &t2}
	log := filepath.Join(t.TempDir(), "ov.log")
	text := "$ ov build --progress rawjson\n# 3s wall, <nil>\n" + line(enc, step) + line(&done) + line(push) + "built deb-parent (linux/amd64) -> push\n"
	if err := os.WriteFile(log, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ovPhases(log)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := got["deb-parent"]
	if len(got) != 1 || !ok || len(p.Vertices) != 2 || !p.Start.Equal(t0) || !p.End.Equal(t2) {
		t.Fatalf("ov phases %+v", got)
	}
}
