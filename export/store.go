package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Store is ov's side of an encoded export (see Encoding), a directory kept
// across builds:
//
//	blobs/sha256/...   what BuildKit exported (new layers uncompressed) and
//	                   the layers ov encoded, as in an OCI layout
//	encoded/<key>      which encoded blob a layer became (see encoding.key)
//
// BuildKit writes into it as into any content store and skips what it
// holds, so a layer crosses from buildkitd once; an encoded layer is
// encoded once per epoch. Blobs unused for a while go (Sweep).
type Store struct {
	dir string
	cs  content.Store

	mu       sync.Mutex
	inflight map[string]*encodeCall // one encoding of a key at a time
}

// OpenStore opens (creating) the store at dir.
func OpenStore(dir string) (*Store, error) {
	cs, err := contentlocal.NewStore(dir)
	if err != nil {
		return nil, fmt.Errorf("export store %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "encoded"), 0o755); err != nil {
		return nil, fmt.Errorf("export store: %w", err)
	}
	return &Store{dir: dir, cs: cs, inflight: map[string]*encodeCall{}}, nil
}

func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.dir, "blobs", h.Algorithm, h.Hex)
}

// openBlob opens blob h, refusing a symbolic link: the store is in the
// project's .build/, and no file there may make ov read elsewhere.
func (s *Store) openBlob(h v1.Hash) (*os.File, error) {
	f, err := os.OpenFile(s.blobPath(h), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("export store: %w", err)
	}
	return f, nil
}

// exportTemp starts the names of an export's temp dirs in encoded/.
const exportTemp = ".export-"

// encodedBlob is what a layer was encoded to: the blob and its diffID
// (the timestamps clamped, a new one; otherwise the layer's).
type encodedBlob struct {
	Digest v1.Hash `json:"digest"`
	DiffID v1.Hash `json:"diffID"`
	Size   int64   `json:"size"`
}

// lookup returns the encoding recorded under key whose blob is still there.
func (s *Store) lookup(key string) (encodedBlob, bool) {
	e, ok := s.read(key)
	if !ok {
		return e, false
	}
	if _, err := os.Stat(s.blobPath(e.Digest)); err != nil {
		return e, false
	}
	touch(filepath.Join(s.dir, "encoded", key))
	touch(s.blobPath(e.Digest))
	return e, true
}

// record remembers key's encoding (written whole or not at all), and
// forgets the layer's encodings for other epochs: a new commit is a new
// epoch for every layer, and keeping each commit's would grow the store
// by the image at every commit.
func (s *Store) record(key string, e encodedBlob) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.dir, "encoded", key), b); err != nil {
		return err
	}
	for _, other := range s.otherEpochs(key) {
		if old, ok := s.read(other); ok && old.Digest != e.Digest {
			os.Remove(s.blobPath(old.Digest))
		}
		os.Remove(filepath.Join(s.dir, "encoded", other))
	}
	return nil
}

// otherEpochs are the keys of the same layer and compression as key (see
// encoding.key) for another epoch.
func (s *Store) otherEpochs(key string) []string {
	parts := strings.Split(key, "-")
	if len(parts) != 3 {
		return nil
	}
	matches, _ := filepath.Glob(filepath.Join(s.dir, "encoded", parts[0]+"-*-"+parts[2]))
	var out []string
	for _, m := range matches {
		if k := filepath.Base(m); k != key {
			out = append(out, k)
		}
	}
	return out
}

// read is the encoding recorded under key.
func (s *Store) read(key string) (encodedBlob, bool) {
	var e encodedBlob
	b, err := os.ReadFile(filepath.Join(s.dir, "encoded", key))
	return e, err == nil && json.Unmarshal(b, &e) == nil
}

// used marks blobs as used now, so Sweep keeps them.
func (s *Store) used(hs ...v1.Hash) {
	for _, h := range hs {
		touch(s.blobPath(h))
	}
}

// Sweep removes what no export used for maxAge: blobs, encodings, and
// ingests BuildKit left half-written (a cancelled export); and the temp
// dirs of exports that did not end. It is run before a build, under the
// build directory's lock; a blob swept that an export needs is sent again.
func (s *Store) Sweep(maxAge time.Duration) error {
	cutoff := time.Now().Add(-maxAge)
	var errs []error
	for _, sub := range []string{"blobs", "encoded", "ingest"} {
		root := filepath.Join(s.dir, sub)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if p == root {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			switch {
			case sub == "encoded" && d.IsDir() && strings.HasPrefix(d.Name(), exportTemp):
				// An export's temp dir: Sweep runs under the build
				// directory's lock, so no export is using it.
				errs = append(errs, os.RemoveAll(p))
				return filepath.SkipDir
			case sub == "ingest" && d.IsDir() && filepath.Dir(p) == root:
				if info.ModTime().Before(cutoff) {
					errs = append(errs, os.RemoveAll(p))
				}
				return filepath.SkipDir
			}
			if d.Type().IsRegular() && info.ModTime().Before(cutoff) {
				errs = append(errs, os.Remove(p))
			}
			return nil
		})
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func touch(p string) {
	now := time.Now()
	os.Chtimes(p, now, now) // only keeps the file from Sweep
}

// writeFileAtomic writes b to p through a temp file and a rename.
func writeFileAtomic(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// encodeCall is one encoding in flight; others wanting its key wait.
type encodeCall struct {
	done chan struct{}
	blob encodedBlob
	err  error
}

// once runs fn for key unless the store has its result or another
// goroutine is computing it, whose result it then shares: a family's
// children export their parent's layers at the same time.
func (s *Store) once(ctx context.Context, key string, fn func() (encodedBlob, error)) (encodedBlob, error) {
	if e, ok := s.lookup(key); ok {
		return e, nil
	}
	s.mu.Lock()
	if c, ok := s.inflight[key]; ok {
		s.mu.Unlock()
		select {
		case <-c.done:
			return c.blob, c.err
		case <-ctx.Done():
			return encodedBlob{}, ctx.Err()
		}
	}
	c := &encodeCall{done: make(chan struct{})}
	s.inflight[key] = c
	s.mu.Unlock()

	c.blob, c.err = fn()
	if c.err == nil {
		c.err = s.record(key, c.blob)
	}
	s.mu.Lock()
	delete(s.inflight, key)
	s.mu.Unlock()
	close(c.done)
	return c.blob, c.err
}
