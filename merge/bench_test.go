package merge

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BenchmarkMerge2GiB merges 8 layers holding 2 GiB of files into one and
// reports the process's peak RSS. The layers are plain tar files on disk,
// as `docker save` writes them: random (incompressible) blobs, text, and
// thousands of small files, overwriting and deleting each other's paths.
//
//	go test -run '^$' -bench Merge2GiB -benchtime 1x ./merge/
func BenchmarkMerge2GiB(b *testing.B) {
	const (
		nLayers = 8
		blob    = 192 << 20 // random content per layer
		text    = 64        // 1 MiB text files per layer
		small   = 2000      // 4 KiB files per layer
	)
	dir := b.TempDir()
	var adds []mutate.Addendum
	var total int64
	for i := range nLayers {
		l, n := benchLayer(b, dir, i, blob, text, small)
		total += n
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: fmt.Sprintf("RUN layer %d", i)}})
	}
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		m, err := Image(context.Background(), img, 1<<40, WithTempDir(dir))
		if err != nil {
			b.Fatal(err)
		}
		if len(m.Groups) != 1 {
			b.Fatalf("want 1 group, got %d", len(m.Groups))
		}
		layers, _ := m.Layers()
		size, _ := layers[0].Size()
		b.Logf("merged %d MiB in %d layers into %d MiB (gzip) in %s", total>>20, nLayers, size>>20, time.Since(start).Round(time.Millisecond))
		m.Close()
	}
	b.StopTimer()
	rss := peakRSS(b)
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(total)/(1<<20), "data-MiB")
}

// benchLayer writes layer i as a tar file and returns it as an uncompressed
// layer, with its size.
func benchLayer(b *testing.B, dir string, i, blob, text, small int) (v1.Layer, int64) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("in-%d.tar", i)))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	tw := tar.NewWriter(bw)
	r := rand.New(rand.NewPCG(uint64(i), 1))
	seed := [32]byte{byte(i)}
	rnd := rand.NewChaCha8(seed)
	mtime := time.Unix(1_700_000_000, 0)
	put := func(name string, size int64, content io.Reader) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: mtime}); err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyN(tw, content, size); err != nil {
			b.Fatal(err)
		}
	}
	mkdir := func(name string) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: mtime}); err != nil {
			b.Fatal(err)
		}
	}
	mkdir("data")
	mkdir("data/text")
	mkdir("data/small")
	// The blob path repeats every other layer: later ones replace it.
	put(fmt.Sprintf("data/blob-%d", i%4), int64(blob), rnd)
	for k := range text {
		put(fmt.Sprintf("data/text/%d-%d.txt", i, k), 1<<20, &textReader{r: r})
	}
	for k := range small {
		put(fmt.Sprintf("data/small/%d.bin", (i*small/2+k)%(4*small)), 4<<10, rnd)
	}
	if i > 0 { // delete some files of the previous layer
		for k := range 10 {
			put(fmt.Sprintf("data/text/.wh.%d-%d.txt", i-1, k), 0, rnd)
		}
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	digest := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
	l, err := partial.CompressedToLayer(&fileLayer{path: f.Name(), digest: digest, diffID: digest, size: st.Size(), mt: types.DockerUncompressedLayer})
	if err != nil {
		b.Fatal(err)
	}
	return l, st.Size()
}

// textReader produces compressible text: words from a small vocabulary.
type textReader struct{ r *rand.Rand }

var words = []string{"layer ", "merge ", "image ", "stream ", "tar ", "overlay ", "whiteout\n", "opaque ", "hardlink ", "digest "}

func (t *textReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], words[t.r.IntN(len(words))])
	}
	return n, nil
}
