package merge

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"os"
	"path"
	"time"

	"github.com/klauspost/compress/gzip"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// mergeLayers writes the layers of one group (image layers first, first+1,
// ...) as a single layer into a new file in dir. Pass 1 reads only headers and
// decides; pass 2 copies the winning entries' content.
func mergeLayers(ctx context.Context, layers []v1.Layer, first int, dir string, o options, mt types.MediaType) (v1.Layer, error) {
	x := newIndex()
	sums := make([]uint64, len(layers))
	for j, l := range layers {
		var entries []entry
		sum, err := readLayer(ctx, l, func(hdr *tar.Header, ord int32, _ io.Reader) error {
			entries = append(entries, classify(hdr, ord))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", first+j, err)
		}
		sums[j] = sum
		x.counts = append(x.counts, int32(len(entries)))
		if err := x.apply(int32(j), entries); err != nil {
			return nil, fmt.Errorf("layer %d: %w", first+j, err)
		}
	}
	acts, err := x.finish()
	if err != nil {
		return nil, err
	}

	f, err := os.CreateTemp(dir, "layer-*.tar")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out, err := newLayerWriter(f, o)
	if err != nil {
		return nil, err
	}
	w := &groupWriter{tw: tar.NewWriter(out)}
	if err := w.markers(x.root); err != nil {
		return nil, err
	}
	for j, l := range layers {
		sum, err := readLayer(ctx, l, func(hdr *tar.Header, ord int32, content io.Reader) error {
			if int(ord) >= len(acts[j]) {
				return errChanged
			}
			return w.entry(acts[j][ord], hdr, content)
		})
		if err == nil && sum != sums[j] {
			err = errChanged
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", first+j, err)
		}
	}
	if err := w.tw.Close(); err != nil {
		return nil, err
	}
	layer, err := out.finish(f.Name(), mt)
	if err != nil {
		return nil, err
	}
	return layer, f.Close()
}

var errChanged = errors.New("layer content changed between reads")

// readLayer calls fn for each tar entry of l, in stream order. It returns a
// hash of the entry names and types so pass 2 can check it read the same
// stream as pass 1.
func readLayer(ctx context.Context, l v1.Layer, fn func(hdr *tar.Header, ord int32, content io.Reader) error) (uint64, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	h := fnv.New64a()
	tr := tar.NewReader(ctxReader{ctx, rc})
	for ord := int32(0); ; ord++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			return h.Sum64(), nil
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, err
		}
		fmt.Fprintf(h, "%s\x00%c\x00", hdr.Name, hdr.Typeflag)
		if err := fn(hdr, ord, tr); err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
}

// ctxReader stops a long copy when the merge is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// groupWriter is pass 2: it writes the merged layer's tar stream.
type groupWriter struct {
	tw *tar.Writer
}

// markers writes the whiteouts and opaque markers of paths the merged layer
// has no entry for, in path order, before any content.
func (w *groupWriter) markers(n *node) error {
	if n.marker && !n.win.ok() {
		name := path.Join(n.path(), whOpaque)
		if n.gone {
			name = path.Join(n.parent.path(), whPrefix+n.name)
		}
		if err := w.parents(n); err != nil {
			return err
		}
		if err := w.mark(name); err != nil {
			return err
		}
	}
	for _, name := range sortedKids(n) {
		if err := w.markers(n.kids[name]); err != nil {
			return err
		}
	}
	return nil
}

func (w *groupWriter) mark(name string) error {
	return w.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: time.Unix(0, 0)})
}

// parents writes the directory entries above n that are not written yet,
// so a directory always precedes its content.
func (w *groupWriter) parents(n *node) error {
	var chain []*node
	for a := n.parent; a != nil; a = a.parent {
		if a.win.ok() && !a.emitted {
			chain = append(chain, a)
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if err := w.dir(chain[i], chain[i].hdr); err != nil {
			return err
		}
	}
	return nil
}

func (w *groupWriter) dir(n *node, hdr *tar.Header) error {
	n.emitted = true
	p := n.path()
	name := rootName
	if p != "" {
		name = p + "/"
	}
	if err := w.tw.WriteHeader(outHeader(hdr, name)); err != nil {
		return err
	}
	if n.marker {
		return w.mark(path.Join(p, whOpaque))
	}
	return nil
}

// entry writes one input entry as pass 1 decided (a nil action drops it).
func (w *groupWriter) entry(a *action, hdr *tar.Header, content io.Reader) error {
	if a == nil {
		return nil
	}
	if hdr.Typeflag == tar.TypeDir && a.linkname == "" && a.node.dir {
		if a.node.emitted {
			return nil
		}
		if err := w.parents(a.node); err != nil {
			return err
		}
		return w.dir(a.node, hdr)
	}
	if err := w.parents(a.node); err != nil {
		return err
	}
	h := outHeader(hdr, a.node.path())
	if a.linkname != "" {
		h.Typeflag, h.Linkname, h.Size = tar.TypeLink, a.linkname, 0
	}
	if err := w.tw.WriteHeader(h); err != nil {
		return err
	}
	if h.Size > 0 {
		_, err := io.Copy(w.tw, content)
		return err
	}
	return nil
}

// outHeader copies an input header for the merged layer under a new name.
// The input format is kept when it carries more than USTAR can (sub-second
// times, long names), otherwise the writer picks one.
func outHeader(in *tar.Header, name string) *tar.Header {
	h := *in
	h.Name = name
	switch h.Typeflag {
	case tar.TypeGNUSparse, tar.TypeRegA: // the reader already expanded sparse content
		h.Typeflag = tar.TypeReg
	case tar.TypeLink:
		h.Linkname = normalize(h.Linkname)
	}
	if h.Format&(tar.FormatPAX|tar.FormatGNU) == 0 {
		h.Format = tar.FormatUnknown
	}
	return &h
}

// layerWriter compresses the merged tar stream into a file, hashing both
// sides on the way so the layer needs no further read.
type layerWriter struct {
	sink   io.Writer
	buf    *bufio.Writer
	gz     *gzip.Writer
	diffID hash.Hash
	digest hash.Hash
	size   int64
}

func newLayerWriter(f *os.File, o options) (*layerWriter, error) {
	w := &layerWriter{buf: bufio.NewWriterSize(f, 1<<20), diffID: sha256.New(), digest: sha256.New()}
	file := io.MultiWriter(w.buf, w.digest, counter{&w.size})
	if o.uncompressed {
		w.digest = w.diffID
		w.sink = io.MultiWriter(w.buf, w.diffID, counter{&w.size})
		return w, nil
	}
	gz, err := gzip.NewWriterLevel(file, o.level)
	if err != nil {
		return nil, err
	}
	w.gz = gz
	w.sink = io.MultiWriter(gz, w.diffID)
	return w, nil
}

func (w *layerWriter) Write(p []byte) (int, error) { return w.sink.Write(p) }

func (w *layerWriter) finish(path string, mt types.MediaType) (v1.Layer, error) {
	if w.gz != nil {
		if err := w.gz.Close(); err != nil {
			return nil, err
		}
	}
	if err := w.buf.Flush(); err != nil {
		return nil, err
	}
	return partial.CompressedToLayer(&fileLayer{
		path:   path,
		digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", w.digest.Sum(nil))},
		diffID: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", w.diffID.Sum(nil))},
		size:   w.size,
		mt:     mt,
	})
}

type counter struct{ n *int64 }

func (c counter) Write(p []byte) (int, error) {
	*c.n += int64(len(p))
	return len(p), nil
}

// fileLayer is a merged layer in a temp file, hashes known.
type fileLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
	mt             types.MediaType
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
