package baseuser

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/overthink/ov/spec"
)

// tf is one tar entry; link makes a symlink ("->target") or hard link ("=>target").
type tf struct {
	name, body string
	dir        bool
}

func layer(t *testing.T, files ...tf) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(f.body))}
		switch {
		case f.dir:
			h = &tar.Header{Name: f.name, Mode: 0o755, Typeflag: tar.TypeDir}
		case strings.HasPrefix(f.body, "->"):
			h = &tar.Header{Name: f.name, Typeflag: tar.TypeSymlink, Linkname: f.body[2:]}
		case strings.HasPrefix(f.body, "=>"):
			h = &tar.Header{Name: f.name, Typeflag: tar.TypeLink, Linkname: f.body[2:]}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, f.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func image(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testRegistry serves an in-memory registry on loopback and counts requests.
type testRegistry struct {
	host  string
	heads atomic.Int32
	gets  atomic.Int32
}

func newRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{}
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.Method {
		case http.MethodHead:
			r.heads.Add(1)
		case http.MethodGet:
			if strings.Contains(req.URL.Path, "/blobs/") || strings.Contains(req.URL.Path, "/manifests/") {
				r.gets.Add(1) // not the /v2/ ping every client makes
			}
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

func (r *testRegistry) push(t *testing.T, repo string, img v1.Image) string {
	t.Helper()
	ref := r.host + "/" + repo
	nr, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(nr, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

const passwd = "root:x:0:0:root:/root:/bin/sh\nubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n"

var want = spec.User{Name: "user", UID: 1000, GID: 1000}

func opts(t *testing.T) Options {
	return Options{CacheDir: t.TempDir()}
}

func TestLookup(t *testing.T) {
	t.Setenv(MirrorsEnv, "")
	reg := newRegistry(t)
	passwdLayer := layer(t, tf{name: "etc/", dir: true}, tf{name: "etc/passwd", body: passwd})
	cases := []struct {
		name   string
		layers []v1.Layer
		want   spec.User
	}{
		{"single layer", []v1.Layer{passwdLayer},
			spec.User{Name: "ubuntu", UID: 1000, GID: 1000, Home: "/home/ubuntu"}},
		{"top layer wins", []v1.Layer{passwdLayer, layer(t, tf{name: "./etc/passwd", body: "dev:x:1000:2000::/srv/dev:/bin/sh\n"})},
			spec.User{Name: "dev", UID: 1000, GID: 2000, Home: "/srv/dev"}},
		{"found below unrelated layers", []v1.Layer{passwdLayer, layer(t, tf{name: "usr/bin/x", body: "x"})},
			spec.User{Name: "ubuntu", UID: 1000, GID: 1000, Home: "/home/ubuntu"}},
		{"whiteout hides lower passwd", []v1.Layer{passwdLayer, layer(t, tf{name: "etc/.wh.passwd"})},
			spec.User{Name: "user", UID: 1000, GID: 1000, Home: "/home/user"}},
		{"opaque etc hides lower passwd", []v1.Layer{passwdLayer, layer(t, tf{name: "etc/.wh..wh..opq"}, tf{name: "etc/hostname", body: "x"})},
			spec.User{Name: "user", UID: 1000, GID: 1000, Home: "/home/user"}},
		{"opaque etc with its own passwd", []v1.Layer{passwdLayer, layer(t, tf{name: "etc/.wh..wh..opq"}, tf{name: "etc/passwd", body: "me:x:1000:7:x:/me:/bin/sh\n"})},
			spec.User{Name: "me", UID: 1000, GID: 7, Home: "/me"}},
		{"deleted etc", []v1.Layer{passwdLayer, layer(t, tf{name: ".wh.etc"})},
			spec.User{Name: "user", UID: 1000, GID: 1000, Home: "/home/user"}},
		{"no such uid", []v1.Layer{layer(t, tf{name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/sh\n"})},
			spec.User{Name: "user", UID: 1000, GID: 1000, Home: "/home/user"}},
		{"no passwd at all", []v1.Layer{layer(t, tf{name: "bin/sh", body: "x"})},
			spec.User{Name: "user", UID: 1000, GID: 1000, Home: "/home/user"}},
		{"symlinked passwd", []v1.Layer{layer(t, tf{name: "usr/share/passwd", body: passwd}), layer(t, tf{name: "etc/passwd", body: "->../usr/share/passwd"})},
			spec.User{Name: "ubuntu", UID: 1000, GID: 1000, Home: "/home/ubuntu"}},
		{"hard-linked passwd", []v1.Layer{layer(t, tf{name: "lib/passwd", body: passwd}, tf{name: "etc/passwd", body: "=>lib/passwd"})},
			spec.User{Name: "ubuntu", UID: 1000, GID: 1000, Home: "/home/ubuntu"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := reg.push(t, "base"+string(rune('a'+i))+":1", image(t, c.layers...))
			got, err := Lookup(context.Background(), ref, want, opts(t))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestLookupRoot(t *testing.T) {
	reg := newRegistry(t)
	ref := reg.push(t, "busybox:1", image(t, layer(t, tf{name: "bin/sh", body: "x"})))
	got, err := Lookup(context.Background(), ref, spec.User{Name: "root", UID: 0, GID: 0}, opts(t))
	if err != nil {
		t.Fatal(err)
	}
	if got.Home != "/root" {
		t.Errorf("home = %q, want /root", got.Home)
	}
}

func TestLookupIndexPicksPlatform(t *testing.T) {
	reg := newRegistry(t)
	amd := image(t, layer(t, tf{name: "etc/passwd", body: "amd:x:1000:1000::/home/amd:/bin/sh\n"}))
	arm := image(t, layer(t, tf{name: "etc/passwd", body: "arm:x:1000:1000::/home/arm:/bin/sh\n"}))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	ref := reg.host + "/multi:1"
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		arch, name string
	}{{"arm64", "arm"}, {"amd64", "amd"}, {"s390x", "amd"}} { // unknown platform: the first image
		o := opts(t)
		o.Platform = &v1.Platform{OS: "linux", Architecture: c.arch}
		got, err := Lookup(context.Background(), ref, want, o)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != c.name {
			t.Errorf("%s: got user %q, want %q", c.arch, got.Name, c.name)
		}
	}
}

func TestLookupCachesPerDigest(t *testing.T) {
	reg := newRegistry(t)
	ref := reg.push(t, "cached:1", image(t, layer(t, tf{name: "etc/passwd", body: passwd})))
	o := opts(t)
	if _, err := Lookup(context.Background(), ref, want, o); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(o.CacheDir, "sha256-*-1000.json"))
	if len(files) != 1 {
		t.Fatalf("cache files: %v", files)
	}
	gets, heads := reg.gets.Load(), reg.heads.Load()
	got, err := Lookup(context.Background(), ref, want, o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "ubuntu" {
		t.Errorf("cached lookup: %+v", got)
	}
	if reg.gets.Load() != gets {
		t.Errorf("second lookup pulled (%d GETs), want HEAD only", reg.gets.Load()-gets)
	}
	if reg.heads.Load() != heads+1 {
		t.Errorf("second lookup made %d HEADs, want 1", reg.heads.Load()-heads)
	}

	// A new image under the same tag is a new digest: re-read.
	reg.push(t, "cached:1", image(t, layer(t, tf{name: "etc/passwd", body: "new:x:1000:1000::/home/new:/bin/sh\n"})))
	got, err = Lookup(context.Background(), ref, want, o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "new" {
		t.Errorf("after retag: %+v", got)
	}
}

func TestLookupMirror(t *testing.T) {
	reg := newRegistry(t)
	reg.push(t, "library/debian:bookworm", image(t, layer(t, tf{name: "etc/passwd", body: passwd})))
	o := opts(t)
	o.Mirrors = map[string]string{"docker.io": reg.host}
	got, err := Lookup(context.Background(), "debian:bookworm", want, o)
	if err != nil {
		t.Fatal(err)
	}
	if got.Home != "/home/ubuntu" {
		t.Errorf("got %+v", got)
	}

	// The same through the environment.
	t.Setenv(MirrorsEnv, "docker.io="+reg.host)
	got, err = Lookup(context.Background(), "docker.io/library/debian:bookworm", want, opts(t))
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "ubuntu" {
		t.Errorf("env mirror: got %+v", got)
	}
}

func TestMirrorsFromEnvRejectsGarbage(t *testing.T) {
	t.Setenv(MirrorsEnv, "docker.io")
	if _, err := MirrorsFromEnv(); err == nil {
		t.Fatal("no error for a pair without =")
	}
}

func TestLookupUnreachable(t *testing.T) {
	t.Setenv(MirrorsEnv, "")
	// A closed loopback port: nothing listens there.
	srv := httptest.NewServer(http.NotFoundHandler())
	host := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	_, err := Lookup(context.Background(), host+"/debian:bookworm", want, opts(t))
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want an UnreachableError", err)
	}
	for _, s := range []string{host + "/debian:bookworm", "--offline-user", "OV_OFFLINE=1", "/home/user"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestLookupMissingTag(t *testing.T) {
	reg := newRegistry(t)
	_, err := Lookup(context.Background(), reg.host+"/nothing:here", want, opts(t))
	if err == nil || !strings.Contains(err.Error(), reg.host+"/nothing:here") {
		t.Fatalf("got %v", err)
	}
}

func TestCacheDirDefault(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", dir)
	reg := newRegistry(t)
	ref := reg.push(t, "c:1", image(t, layer(t, tf{name: "etc/passwd", body: passwd})))
	if _, err := Lookup(context.Background(), ref, want, Options{}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "ov", "users", "*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files under XDG_CACHE_HOME: %v", files)
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), `"home":"/home/ubuntu"`) {
		t.Errorf("cache content %s", b)
	}
}

// A base image's file larger than MaxFileSize is refused, not read into
// memory (a 1.5 GB /etc/passwd made generate use 3 GB).
func TestReadFileCapped(t *testing.T) {
	big := layer(t, tf{name: "etc/passwd", body: "root:x:0:0::/root:/bin/sh\n" + strings.Repeat("#", MaxFileSize)})
	_, err := ReadFile([]v1.Layer{big}, "/etc/passwd")
	if err == nil || !strings.Contains(err.Error(), "more than the 8 MiB") {
		t.Errorf("got %v", err)
	}
	// Through a symlink too, and just under the cap is fine.
	ok := layer(t, tf{name: "etc/passwd", body: "->/etc/real"}, tf{name: "etc/real", body: strings.Repeat("#", MaxFileSize)})
	if b, err := ReadFile([]v1.Layer{ok}, "/etc/passwd"); err != nil || len(b) != MaxFileSize {
		t.Errorf("at the cap: %d bytes, %v", len(b), err)
	}
}
