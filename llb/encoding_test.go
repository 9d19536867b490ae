package llb

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/overthink/ov/export"
	"github.com/overthink/ov/internal/testenv"
	"github.com/overthink/ov/plan"
)

// An image exported through export.Encoding is BuildKit's own export with
// the layers encoded on ov's side: the same layers (diffIDs, with the
// epoch's clamp), the base's blobs kept, provenance naming the image; and a
// second build encodes nothing again and gives the same image.
func TestEncodingExport(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	ctx := context.Background()
	epoch := int64(1700000000)
	img := layered()
	img.Epoch = &plan.Epoch{Unix: epoch}

	// BuildKit encodes (rewrite-timestamp): the reference.
	ref := t.TempDir()
	if _, err := Build(ctx, c, BuildOptions{Family: []*plan.Image{img}, Exporter: export.OCILayout(ref), Provenance: "min"}); err != nil {
		t.Fatal(err)
	}
	storeDir := t.TempDir()
	encode := func() string {
		t.Helper()
		store, err := export.OpenStore(storeDir)
		if err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		var log statusLog
		if _, err := Build(ctx, c, BuildOptions{Family: []*plan.Image{img}, Exporter: export.Encoding(store, export.OCILayout(out)), Provenance: "min", Status: log.channel()}); err != nil {
			t.Fatal(err)
		}
		// ov's side of the export shows in the progress.
		for _, phase := range []string{"[layered] encoding layers", "[layered] writing OCI layout " + filepath.Join(out, img.Name)} {
			if n, _ := log.ran(phase); n != 1 {
				t.Errorf("progress: %q completed %d times", phase, n)
			}
		}
		return filepath.Join(out, img.Name)
	}
	first := encode()
	encodings := inodes(t, filepath.Join(storeDir, "encoded"))

	want, got := layoutImages(t, filepath.Join(ref, img.Name)), layoutImages(t, first)
	if len(got) != 2 || len(want) != 2 {
		t.Fatalf("platforms: encoded %d, BuildKit's %d", len(got), len(want))
	}
	for p, g := range got {
		w := want[p]
		if err := validate.Image(g); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		gc, wc := configOf(t, g), configOf(t, w)
		if !slices.Equal(gc.RootFS.DiffIDs, wc.RootFS.DiffIDs) {
			t.Errorf("%s: diffIDs %v, BuildKit's %v", p, gc.RootFS.DiffIDs, wc.RootFS.DiffIDs)
		}
		gm, _ := g.Manifest()
		wm, _ := w.Manifest()
		if gm.Layers[0].Digest != wm.Layers[0].Digest {
			t.Errorf("%s: base layer %s, BuildKit's %s (kept as it is)", p, gm.Layers[0].Digest, wm.Layers[0].Digest)
		}
		for i, l := range gm.Layers[1:] {
			if l.MediaType != types.OCILayer {
				t.Errorf("%s: layer %d is %s", p, i+1, l.MediaType)
			}
		}
		layers, _ := g.Layers()
		for _, l := range layers[1:] {
			assertClamped(t, l, time.Unix(epoch, 0))
		}
		if gc.Created.Unix() != epoch {
			t.Errorf("%s: created %s", p, gc.Created)
		}
	}
	assertSubjects(t, first)

	// Unchanged: the same images (the index differs: provenance carries
	// the build's times), and no layer encoded again.
	second := encode()
	again := layoutImages(t, second)
	for p, g := range got {
		a, _ := g.Digest()
		b, _ := again[p].Digest()
		if a != b {
			t.Errorf("%s built again: %s, first %s", p, b, a)
		}
	}
	now := inodes(t, filepath.Join(storeDir, "encoded"))
	for k, ino := range encodings {
		if now[k] != ino {
			t.Errorf("encoding %s made again", k)
		}
	}
}

// assertClamped fails unless every time in l's tar is at most epoch.
func assertClamped(t *testing.T, l v1.Layer, epoch time.Time) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.ModTime.After(epoch) || h.AccessTime.After(epoch) || h.ChangeTime.After(epoch) {
			t.Errorf("%s: times %s %s %s after the epoch", h.Name, h.ModTime, h.AccessTime, h.ChangeTime)
		}
	}
}

// assertSubjects fails unless each attestation in the layout at dir names
// the digest of the image it is attached to, and no other.
func assertSubjects(t *testing.T, dir string) {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	root, err := idx.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	rm, _ := root.IndexManifest()
	images, n := map[string]bool{}, 0
	for _, d := range rm.Manifests {
		if d.Annotations["vnd.docker.reference.type"] == "" {
			images[d.Digest.Hex] = true
		}
	}
	for _, d := range rm.Manifests {
		if d.Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
			continue
		}
		n++
		subject := d.Annotations["vnd.docker.reference.digest"]
		att, err := root.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := att.Layers()
		for _, l := range ls {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			var st struct {
				Subject []struct {
					Digest map[string]string `json:"digest"`
				} `json:"subject"`
			}
			err = json.NewDecoder(rc).Decode(&st)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range st.Subject {
				if "sha256:"+s.Digest["sha256"] != subject || !images[s.Digest["sha256"]] {
					t.Errorf("attestation %s names %s, attached to %s", d.Digest, s.Digest["sha256"], subject)
				}
			}
		}
	}
	if n != len(images) {
		t.Errorf("%d attestations for %d images", n, len(images))
	}
}

// repoRegistry is a loopback registry whose repositories hold blobs apart,
// as a real registry's do (the in-process one finds any blob in any
// repository): a blob is in a repository once uploaded or mounted there.
// It counts the uploads per digest and the mounts.
type repoRegistry struct {
	mu      sync.Mutex
	has     map[string]bool // "<repo> <digest>"
	uploads map[string]int  // digest: uploads completed
	mounts  int
	host    string
}

func newRepoRegistry(t *testing.T) *repoRegistry {
	r := &repoRegistry{has: map[string]bool{}, uploads: map[string]int{}}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		repo, rest, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/blobs/")
		if !ok {
			h.ServeHTTP(w, req)
			return
		}
		q := req.URL.Query()
		r.mu.Lock()
		switch {
		case req.Method == http.MethodHead && !strings.HasPrefix(rest, "uploads"):
			if !r.has[repo+" "+rest] {
				r.mu.Unlock()
				w.WriteHeader(http.StatusNotFound)
				return
			}
		case req.Method == http.MethodPost && q.Get("mount") != "":
			d, from := q.Get("mount"), q.Get("from")
			if r.has[from+" "+d] {
				r.has[repo+" "+d] = true
				r.mounts++
				r.mu.Unlock()
				w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d)
				w.Header().Set("Docker-Content-Digest", d)
				w.WriteHeader(http.StatusCreated)
				return
			}
			q.Del("mount")
			q.Del("from")
			req.URL.RawQuery = q.Encode()
		case req.Method == http.MethodPut && q.Get("digest") != "":
			r.has[repo+" "+q.Get("digest")] = true
			r.uploads[q.Get("digest")]++
		}
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

// A child's push mounts the blobs it shares with its parent from the
// parent's repository, as BuildKit's push does, rather than uploading them
// again: each blob is uploaded once.
func TestEncodingPushMounts(t *testing.T) {
	env := testenv.Get(t)
	c := env.Client(t)
	reg := newRepoRegistry(t)
	family := debianFamily(t, env, reg.host+"/ov")
	store, err := export.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(context.Background(), c, BuildOptions{Family: family, Exporter: export.Encoding(store, export.Push()), WaitForParents: true}); err != nil {
		t.Fatal(err)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	for d, n := range reg.uploads {
		if n > 1 {
			t.Errorf("blob %s uploaded %d times", d, n)
		}
	}
	child, err := name.ParseReference(reg.host+"/ov/child:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(child)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	mounted := 0
	for _, l := range m.Layers {
		if !reg.has["ov/child "+l.Digest.String()] {
			t.Errorf("the child's repository lacks layer %s", l.Digest)
		}
		if reg.has["ov/parent "+l.Digest.String()] {
			mounted++
		}
	}
	if mounted == 0 || reg.mounts < mounted {
		t.Errorf("%d mounts for the %d layers the child shares with its parent", reg.mounts, mounted)
	}
}
