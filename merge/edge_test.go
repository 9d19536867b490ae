package merge

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/overthink/ov/internal/testenv"
)

// entriesByName reads the entries of the image's layer i by normalized name.
func entriesByName(t *testing.T, img v1.Image, i int) map[string]tarEntry {
	t.Helper()
	layers, _ := img.Layers()
	rc, err := layers[i].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]tarEntry{}
	for _, e := range readEntries(t, rc) {
		out[clean(e.hdr.Name)] = e
	}
	return out
}

// TestEdgeCases: what a layer tar can carry survives a merge unchanged.
func TestEdgeCases(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 123456789)
	longDir := strings.TrimSuffix(strings.Repeat("a-rather-long-directory-name/", 12), "/")
	longFile := longDir + "/and-a-file-name-that-is-long-too.txt"
	var l0 []genEntry
	for d := longDir; d != "."; d = path.Dir(d) {
		l0 = append([]genEntry{dir(d + "/")}, l0...)
	}
	l0 = append(l0, dir("dev/"))
	add := func(name string, h tar.Header, body string) {
		h.Name = name
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1_700_000_000, 0)
		}
		l0 = append(l0, genEntry{hdr: h, body: []byte(body)})
	}
	cases := []struct {
		name string
		hdr  tar.Header
		body string
	}{
		{"xattrs", tar.Header{Typeflag: tar.TypeReg, PAXRecords: map[string]string{
			"SCHILY.xattr.user.mime_type":       "text/plain",
			"SCHILY.xattr.security.capability":  "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
			"SCHILY.xattr.trusted.overlay.test": "y",
			"LIBARCHIVE.creationtime":           "1700000000",
		}}, "with xattrs"},
		{"pax-times", tar.Header{Typeflag: tar.TypeReg, Format: tar.FormatPAX, ModTime: t0, AccessTime: t0.Add(time.Hour), ChangeTime: t0.Add(2 * time.Hour)}, "ns times"},
		{longFile, tar.Header{Typeflag: tar.TypeReg}, "long name"},
		{"long-symlink", tar.Header{Typeflag: tar.TypeSymlink, Linkname: "/" + longFile}, ""},
		{"long-hardlink", tar.Header{Typeflag: tar.TypeLink, Linkname: longFile}, ""},
		{"gnu-long-name-" + strings.Repeat("g", 120), tar.Header{Typeflag: tar.TypeReg, Format: tar.FormatGNU}, "gnu"},
		{"dev/null", tar.Header{Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}, ""},
		{"dev/sda", tar.Header{Typeflag: tar.TypeBlock, Devmajor: 8, Devminor: 0, Mode: 0o660, Gid: 6}, ""},
		{"dev/fifo", tar.Header{Typeflag: tar.TypeFifo, Mode: 0o600}, ""},
		{"ünïcødé-名前.txt", tar.Header{Typeflag: tar.TypeReg}, "unicode"},
		{"big-ids", tar.Header{Typeflag: tar.TypeReg, Uid: 3_000_000, Gid: 4_000_000, Uname: "someone", Gname: "somegroup"}, "ids"},
		{"setuid", tar.Header{Typeflag: tar.TypeReg, Mode: 0o4755}, "suid"},
		{"empty", tar.Header{Typeflag: tar.TypeReg}, ""},
	}
	for _, c := range cases {
		add(c.name, c.hdr, c.body)
	}
	img := testImage(t, [][]byte{tarBytes(t, l0), tarBytes(t, []genEntry{file("other", "x")})}, true, nil)
	m := mergeTop(t, img, 0)
	checkSame(t, "edge cases", flatten(t, img, specSemantics), m)

	before, after := entriesByName(t, img, 0), entriesByName(t, m, 0)
	for _, c := range cases {
		t.Run(c.name[:min(len(c.name), 20)], func(t *testing.T) {
			b, a := before[clean(c.name)], after[clean(c.name)]
			if a.hdr == nil {
				t.Fatalf("%s missing from the merged layer", c.name)
			}
			if *a.meta != *b.meta {
				t.Fatalf("entry changed:\n  was %v\n  now %v", b.meta, a.meta)
			}
			bh, ah := b.hdr, a.hdr
			if bh.Uname != ah.Uname || bh.Gname != ah.Gname || !bh.AccessTime.Equal(ah.AccessTime) ||
				!bh.ChangeTime.Equal(ah.ChangeTime) || bh.Linkname != ah.Linkname {
				t.Fatalf("header changed:\n  was %+v\n  now %+v", bh, ah)
			}
		})
	}
}

// zeroLayer is an uncompressed layer holding one big file of zeros, made on
// the fly: nothing of its size is ever in memory or on disk.
type zeroLayer struct {
	size   int64
	digest v1.Hash
}

func (z *zeroLayer) stream() io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "big/", Mode: 0o755, ModTime: time.Unix(1_700_000_000, 0)})
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big/zeros", Size: z.size, Mode: 0o644, ModTime: time.Unix(1_700_000_000, 0)})
		}
		if err == nil {
			_, err = io.CopyN(tw, zeros{}, z.size)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func (z *zeroLayer) Digest() (v1.Hash, error) {
	if z.digest.Hex == "" {
		rc := z.stream()
		defer rc.Close()
		h, _, err := v1.SHA256(rc)
		if err != nil {
			return v1.Hash{}, err
		}
		z.digest = h
	}
	return z.digest, nil
}
func (z *zeroLayer) DiffID() (v1.Hash, error)            { return z.Digest() }
func (z *zeroLayer) Compressed() (io.ReadCloser, error)  { return z.stream(), nil }
func (z *zeroLayer) Size() (int64, error)                { return z.size + 3*512 + 1024, nil }
func (z *zeroLayer) MediaType() (types.MediaType, error) { return types.DockerUncompressedLayer, nil }

// peakRSS is the process's peak resident set size (VmHWM) in bytes.
func peakRSS(t testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// TestFileOver4GiB merges a layer holding a 4.1 GiB file with a small one:
// content intact, memory far below the file size.
func TestFileOver4GiB(t *testing.T) {
	testenv.SkipShort(t, "streams 4 GiB")
	const size = 4<<30 + 100<<20 + 12345
	zl, err := partial.CompressedToLayer(&zeroLayer{size: size})
	if err != nil {
		t.Fatal(err)
	}
	small, _ := testImage(t, [][]byte{tarBytes(t, []genEntry{dir("big/"), file("big/other", "x")})}, false, nil).Layers()
	img, err := mutate.Append(empty.Image,
		mutate.Addendum{Layer: zl, History: v1.History{CreatedBy: "zeros"}},
		mutate.Addendum{Layer: small[0], History: v1.History{CreatedBy: "small"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m, err := Image(context.Background(), img, 1<<40, WithTempDir(t.TempDir()), WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	t.Logf("merged in %s", time.Since(start))

	layers, _ := m.Layers()
	if len(layers) != 1 {
		t.Fatalf("want 1 layer, got %d", len(layers))
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Name != "big/zeros" {
			continue
		}
		var nz nonZero
		n, err := io.Copy(&nz, tr)
		if err != nil {
			t.Fatal(err)
		}
		if n != size || hdr.Size != size || nz != 0 {
			t.Fatalf("big/zeros: %d bytes (header %d, %d not zero), want %d zeros", n, hdr.Size, nz, int64(size))
		}
	}
	if fmt.Sprint(names) != "[big/ big/zeros big/other]" {
		t.Fatalf("merged layer holds %v", names)
	}
	rss := peakRSS(t)
	t.Logf("peak RSS %d MiB", rss>>20)
	if rss > 1<<30 {
		t.Fatalf("peak RSS %d MiB: memory grows with file size", rss>>20)
	}
}

// nonZero counts the non-zero bytes written to it.
type nonZero int64

func (c *nonZero) Write(p []byte) (int, error) {
	written := len(p)
	for len(p) > 0 {
		n := min(len(p), len(zeroBlock))
		if !bytes.Equal(p[:n], zeroBlock[:n]) {
			for _, b := range p[:n] {
				if b != 0 {
					*c++
				}
			}
		}
		p = p[n:]
	}
	return written, nil
}

var zeroBlock = make([]byte, 64<<10)
