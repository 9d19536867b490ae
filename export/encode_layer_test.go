package export

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/util/converter/tarconverter"
)

var (
	epoch  = time.Unix(1700000000, 0).UTC()
	before = epoch.Add(-time.Hour)
	after  = epoch.Add(time.Hour)
)

// layerTar is a layer's tar as BuildKit's differ writes them (PAX, times
// on both sides of the epoch, xattrs, long names, links), with the trailing
// padding GNU tar adds.
func layerTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	long := strings.Repeat("d/", 60) + "file"
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755, ModTime: after, Format: tar.FormatPAX, AccessTime: after, ChangeTime: after},
		{Typeflag: tar.TypeReg, Name: "etc/new", Mode: 0o644, Size: 5, ModTime: after.Add(123456789), Format: tar.FormatPAX},
		{Typeflag: tar.TypeReg, Name: "etc/old", Mode: 0o600, Size: 5, ModTime: before, Uid: 1000, Gid: 1000, Uname: "u", Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}},
		{Typeflag: tar.TypeReg, Name: long, Mode: 0o644, Size: 5, ModTime: after},
		{Typeflag: tar.TypeSymlink, Name: "etc/link", Linkname: "new", ModTime: after},
		{Typeflag: tar.TypeLink, Name: "etc/hard", Linkname: "etc/old", ModTime: after},
		{Typeflag: tar.TypeReg, Name: "etc/.wh.gone", Mode: 0o644, ModTime: after},
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("data\n"))
		}
	}
	// Several gzip blocks (gzipBlock), so they compress at once.
	big := make([]byte, 3*gzipBlock+12345)
	for i := range big {
		big[i] = byte(i * i >> 7)
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Mode: 0o644, Size: int64(len(big)), ModTime: after})
	tw.Write(big)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	buf.Write(make([]byte, 8192))
	return buf.Bytes()
}

// buildkitRewrite is what BuildKit's rewrite-timestamp makes of a layer's
// tar: its tarconverter with the clamp BuildKit applies
// (util/converter's rewriteTimestampInTarHeader).
func buildkitRewrite(t *testing.T, in []byte, epoch time.Time) []byte {
	t.Helper()
	r := tarconverter.NewReader(bytes.NewReader(in), func(h *tar.Header) {
		if h.ModTime.After(epoch) {
			h.ModTime = epoch
		}
		if h.AccessTime.After(epoch) {
			h.AccessTime = epoch
		}
		if h.ChangeTime.After(epoch) {
			h.ChangeTime = epoch
		}
	})
	defer r.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClampTarIsBuildKitRewrite(t *testing.T) {
	in := layerTar(t)
	var got bytes.Buffer
	if err := clampTar(&got, bytes.NewReader(in), epoch); err != nil {
		t.Fatal(err)
	}
	want := buildkitRewrite(t, in, epoch)
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("clamped tar differs from BuildKit's rewrite: %d bytes, want %d", got.Len(), len(want))
	}
	tr := tar.NewReader(&got)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, tm := range []time.Time{h.ModTime, h.AccessTime, h.ChangeTime} {
			if tm.After(epoch) {
				t.Errorf("%s: time %s after the epoch", h.Name, tm)
			}
		}
		if h.Name == "etc/old" && !h.ModTime.Equal(before) {
			t.Errorf("etc/old: mtime %s, want %s (older than the epoch: kept)", h.ModTime, before)
		}
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func sha(b []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(b))}
}

func writeBlob(t *testing.T, dir string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, sha(b).Hex)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// put writes b into the store as a blob of media type mt.
func (s *Store) put(t *testing.T, b []byte, mt types.MediaType) v1.Descriptor {
	t.Helper()
	dir := filepath.Join(s.dir, "blobs", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeBlob(t, dir, b)
	return v1.Descriptor{MediaType: mt, Digest: sha(b), Size: int64(len(b))}
}

// The store reads no blob through a symbolic link (a .build/ of the
// project's making must not make ov read elsewhere), and no blob whose
// content is not its digest's.
func TestEncodeLayerRefusesForeignBlobs(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, layerTar(t), 0o600)
	d := s.put(t, []byte("placeholder"), types.OCIUncompressedLayer)
	os.Remove(s.blobPath(d.Digest))
	if err := os.Symlink(secret, s.blobPath(d.Digest)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.encodeLayer(context.Background(), d, encoding{}); err == nil {
		t.Error("encoded a blob that is a symbolic link")
	}
	wrong := s.put(t, layerTar(t), types.OCIUncompressedLayer)
	wrong.Digest = sha([]byte("other"))
	os.Rename(s.blobPath(sha(layerTar(t))), s.blobPath(wrong.Digest))
	if _, err := s.encodeLayer(context.Background(), wrong, encoding{}); err == nil || !strings.Contains(err.Error(), "is sha256:") {
		t.Errorf("a blob whose content is not its digest: %v", err)
	}
}

// A layer is encoded the same from BuildKit's uncompressed blob and from a
// gzip blob of it (one made by BuildKit earlier, or imported from a cache),
// so an image's digest does not depend on where its layers came from.
func TestEncodeLayerSameFromAnySource(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	raw := layerTar(t)
	plain, gz := s.put(t, raw, types.OCIUncompressedLayer), s.put(t, gzipped(t, raw), types.OCILayer)
	ctx := context.Background()
	for _, e := range []encoding{{}, {Epoch: &epoch}, {Epoch: &epoch, Uncompressed: true}} {
		a, err := s.encodeLayer(ctx, plain, e)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.encodeLayer(ctx, gz, e)
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Errorf("%+v: from the tar %+v, from gzip %+v", e, a, b)
		}
		// The same on one core: the blocks do not depend on the cores.
		prev := runtime.GOMAXPROCS(1)
		one, err := s.encodeLayer(ctx, plain, e)
		runtime.GOMAXPROCS(prev)
		if err != nil || one != a {
			t.Errorf("%+v: on one core %+v (%v), on %d %+v", e, one, err, prev, a)
		}
		blob, err := os.ReadFile(s.blobPath(a.Digest))
		if err != nil {
			t.Fatal(err)
		}
		if sha(blob) != a.Digest || int64(len(blob)) != a.Size {
			t.Errorf("%+v: blob %s (%d bytes), recorded %s (%d)", e, sha(blob), len(blob), a.Digest, a.Size)
		}
		tarBytes := blob
		if !e.Uncompressed {
			zr, err := gzip.NewReader(bytes.NewReader(blob))
			if err != nil {
				t.Fatal(err)
			}
			if tarBytes, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		want := raw
		if e.Epoch != nil {
			want = buildkitRewrite(t, raw, *e.Epoch)
		}
		if !bytes.Equal(tarBytes, want) || sha(want) != a.DiffID {
			t.Errorf("%+v: encoded tar (diffID %s) is not the layer's (BuildKit's rewrite with an epoch), %s", e, a.DiffID, sha(want))
		}
	}
}

func TestEncodingKey(t *testing.T) {
	id := sha([]byte("layer"))
	keys := map[string]bool{}
	for _, e := range []encoding{{}, {Epoch: &epoch}, {Epoch: &after}, {Uncompressed: true}, {Epoch: &epoch, Uncompressed: true}} {
		keys[e.key(id)] = true
	}
	if len(keys) != 5 {
		t.Errorf("encodings share keys: %v", keys)
	}
}

func TestStoreOnce(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("blob")
	os.MkdirAll(filepath.Join(s.dir, "blobs", "sha256"), 0o755)
	writeBlob(t, filepath.Join(s.dir, "blobs", "sha256"), blob)
	var calls atomic.Int32
	release := make(chan struct{})
	fn := func() (encodedBlob, error) {
		calls.Add(1)
		<-release
		return encodedBlob{Digest: sha(blob), DiffID: sha(blob), Size: 4}, nil
	}
	ctx := context.Background()
	done := make(chan encodedBlob, 2)
	for range 2 {
		go func() {
			b, err := s.once(ctx, "k", fn)
			if err != nil {
				t.Error(err)
			}
			done <- b
		}()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	a, b := <-done, <-done
	if a != b || calls.Load() != 1 {
		t.Errorf("two callers at once: %d encodings, results %+v and %+v", calls.Load(), a, b)
	}
	if _, err := s.once(ctx, "k", func() (encodedBlob, error) { t.Error("encoded again"); return a, nil }); err != nil {
		t.Fatal(err)
	}
	// An encoding whose blob went is made again.
	os.Remove(s.blobPath(a.Digest))
	if _, ok := s.lookup("k"); ok {
		t.Error("lookup found an encoding whose blob is gone")
	}
}

func TestStoreSweep(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	blobs := filepath.Join(s.dir, "blobs", "sha256")
	os.MkdirAll(blobs, 0o755)
	oldB, newB := writeBlob(t, blobs, []byte("old")), writeBlob(t, blobs, []byte("new"))
	oldE := filepath.Join(s.dir, "encoded", "old-none-gzip")
	os.WriteFile(oldE, []byte("{}"), 0o644)
	stale := filepath.Join(s.dir, "encoded", ".export-123")
	os.MkdirAll(stale, 0o755)
	os.Symlink(filepath.Join(s.dir, "blobs"), filepath.Join(stale, "blobs"))
	ingest := filepath.Join(s.dir, "ingest", "abc")
	os.MkdirAll(ingest, 0o755)
	os.WriteFile(filepath.Join(ingest, "data"), []byte("half"), 0o644)
	long := time.Now().Add(-30 * 24 * time.Hour)
	for _, p := range []string{oldB, oldE, ingest, filepath.Join(ingest, "data")} {
		os.Chtimes(p, long, long)
	}
	if err := s.Sweep(7 * 24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{oldB: false, oldE: false, ingest: false, stale: false, newB: true, blobs: true} {
		if _, err := os.Lstat(p); (err == nil) != want {
			t.Errorf("%s: kept %v, want %v", p, err == nil, want)
		}
	}
}

func TestResubjectStatement(t *testing.T) {
	old, img := sha([]byte("old")), sha([]byte("new"))
	st := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"p","subject":[{"name":"a","digest":{"sha256":%q}},{"name":"b","digest":{"sha256":"other"}}],"predicate":{"x":[1,2]}}`, old.Hex)
	out, err := resubjectStatement([]byte(st), old, img)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, old.Hex) || !strings.Contains(s, img.Hex) || !strings.Contains(s, `"other"`) || !strings.Contains(s, `"predicate":{"x":[1,2]}`) {
		t.Errorf("resubjected: %s", s)
	}
}

// A layer's encoding for a new epoch replaces the old epoch's, blob and
// all: every commit would otherwise add the whole image to the store.
func TestStoreKeepsOneEpoch(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	plain := s.put(t, layerTar(t), types.OCIUncompressedLayer)
	ctx := context.Background()
	id := sha(layerTar(t))
	encode := func(e encoding) encodedBlob {
		t.Helper()
		b, err := s.once(ctx, e.key(id), func() (encodedBlob, error) {
			return s.encodeLayer(ctx, plain, e)
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old, tar := encode(encoding{Epoch: &epoch}), encode(encoding{Epoch: &epoch, Uncompressed: true})
	now := encode(encoding{Epoch: &after})
	if _, ok := s.lookup(encoding{Epoch: &epoch}.key(id)); ok {
		t.Error("the old epoch's encoding is still recorded")
	}
	if _, err := os.Stat(s.blobPath(old.Digest)); err == nil {
		t.Error("the old epoch's blob is still there")
	}
	for _, b := range []encodedBlob{now, tar} { // another compression stays
		if _, err := os.Stat(s.blobPath(b.Digest)); err != nil {
			t.Error(err)
		}
	}
}

type baseRecorder struct {
	entryExport
	got map[string][]v1.Hash
}

func (b *baseRecorder) SetBaseLayers(m map[string][]v1.Hash) { b.got = m }

// Multi passes the base layers on to the exports that need them, so an
// Encoding inside it still keeps the base's blobs.
func TestMultiPassesBaseLayers(t *testing.T) {
	rec := &baseRecorder{}
	m := multiExport{entryExport(nil), rec}
	var x Export = m
	bl, ok := x.(BaseLayers)
	if !ok {
		t.Fatal("Multi's export does not take base layers")
	}
	want := map[string][]v1.Hash{"linux/amd64": {sha([]byte("base"))}}
	bl.SetBaseLayers(want)
	if len(rec.got["linux/amd64"]) != 1 || rec.got["linux/amd64"][0] != want["linux/amd64"][0] {
		t.Errorf("passed on %v, want %v", rec.got, want)
	}
}
