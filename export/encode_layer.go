package export

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// encoding says how Encoding writes a layer of an image's own: its
// timestamps clamped to Epoch (nil: kept) and gzip (or, for an engine
// load only, no compression).
type encoding struct {
	Epoch        *time.Time
	Uncompressed bool
}

// key names the encoding of the layer with diffID in the store: a layer's
// encoding depends on its content, the epoch and the compression only.
func (e encoding) key(diffID v1.Hash) string {
	epoch, comp := "none", "gzip"
	if e.Epoch != nil {
		epoch = strconv.FormatInt(e.Epoch.Unix(), 10)
	}
	if e.Uncompressed {
		comp = "tar"
	}
	return diffID.Hex + "-" + epoch + "-" + comp
}

// mediaType is the encoded layer's media type in a manifest of type mt.
func (e encoding) mediaType(manifest types.MediaType) types.MediaType {
	oci := manifest != types.DockerManifestSchema2
	switch {
	case oci && e.Uncompressed:
		return types.OCIUncompressedLayer
	case oci:
		return types.OCILayer
	case e.Uncompressed:
		return types.DockerUncompressedLayer
	default:
		return types.DockerLayer
	}
}

// encodeLayer writes the store's layer blob d into the store again as e
// says (the blob must be d's digest's, see openBlob): decompressed, its tar headers' times no later than the epoch
// (what BuildKit's rewrite-timestamp does, with the same archive/tar, so
// the tar is the same), compressed (newGzip: several times faster than the
// standard library's gzip, which BuildKit uses, for a few percent more
// bytes).
func (s *Store) encodeLayer(ctx context.Context, d v1.Descriptor, e encoding) (encodedBlob, error) {
	in, err := s.openBlob(d.Digest)
	if err != nil {
		return encodedBlob{}, err
	}
	defer in.Close()
	read := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(ctxReader{ctx, in}, read), 1<<20)
	r, err := decompress(br, d.MediaType)
	if err != nil {
		return encodedBlob{}, err
	}
	defer r.Close()

	out, err := os.CreateTemp(filepath.Join(s.dir, "encoded"), ".layer-")
	if err != nil {
		return encodedBlob{}, err
	}
	defer os.Remove(out.Name()) // after the rename, a no-op
	blob := &hashCounter{h: sha256.New()}
	bw := bufio.NewWriterSize(io.MultiWriter(out, blob), 1<<20)
	var sink io.Writer = bw
	var gz *pgzip.Writer
	if !e.Uncompressed {
		if gz, err = newGzip(bw); err != nil {
			return encodedBlob{}, err
		}
		sink = gz
	}
	diff := sha256.New()
	w := io.MultiWriter(sink, diff)
	if e.Epoch != nil {
		err = clampTar(w, r, *e.Epoch)
	} else {
		_, err = io.Copy(w, r)
	}
	if gz != nil {
		// Closed on every path: its block goroutines wait for it.
		if cerr := gz.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		_, err = io.Copy(io.Discard, br) // what follows the stream, for the digest
	}
	if got := fmt.Sprintf("%x", read.Sum(nil)); err == nil && got != d.Digest.Hex {
		err = fmt.Errorf("blob %s in %s is sha256:%s", d.Digest, s.dir, got)
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return encodedBlob{}, fmt.Errorf("encoding layer: %w", err)
	}
	res := encodedBlob{
		Digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", blob.h.Sum(nil))},
		DiffID: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", diff.Sum(nil))},
		Size:   blob.n,
	}
	dst := s.blobPath(res.Digest)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return encodedBlob{}, err
	}
	if err := os.Rename(out.Name(), dst); err != nil {
		return encodedBlob{}, err
	}
	return res, nil
}

// gzipBlock is the size of the blocks newGzip compresses apart: the
// output depends on it (and the level), not on how many run at once.
const gzipBlock = 1 << 20

// newGzip is the gzip writer of encoded layers: klauspost's pgzip at the
// default level, blocks compressed on every core, so one large layer (a
// distribution's packages) does not wait on one core.
func newGzip(w io.Writer) (*pgzip.Writer, error) {
	gz, err := pgzip.NewWriterLevel(w, pgzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	return gz, gz.SetConcurrency(gzipBlock, runtime.GOMAXPROCS(0))
}

// clampTar copies the tar stream r to w with every header's times no later
// than epoch, as BuildKit's rewrite-timestamp converter does (the same
// archive/tar reader and writer, so the same bytes).
func clampTar(w io.Writer, r io.Reader, epoch time.Time) error {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if err := tw.Close(); err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, r)
			return err
		}
		if err != nil {
			return err
		}
		if hdr.ModTime.After(epoch) {
			hdr.ModTime = epoch
		}
		if hdr.AccessTime.After(epoch) {
			hdr.AccessTime = epoch
		}
		if hdr.ChangeTime.After(epoch) {
			hdr.ChangeTime = epoch
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// decompress reads a layer blob of media type mt as its tar stream.
func decompress(r io.Reader, mt types.MediaType) (io.ReadCloser, error) {
	switch mt {
	case types.OCIUncompressedLayer, types.DockerUncompressedLayer, types.OCIUncompressedRestrictedLayer:
		return io.NopCloser(r), nil
	case types.OCILayer, types.DockerLayer, types.OCIRestrictedLayer, types.DockerForeignLayer:
		return gzip.NewReader(r)
	case types.OCILayerZStd:
		d, err := zstd.NewReader(r)
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("layer of media type %q: cannot read it", mt)
}

type hashCounter struct {
	h hash.Hash
	n int64
}

func (c *hashCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// ctxReader stops a long copy when ctx ends.
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
