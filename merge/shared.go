package merge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Shared merges each distinct group once for all the images that use it:
// a family's children start with their parent's layers, so they mostly
// repeat its groups. Its layers live in its own temp directory until Close.
type Shared struct {
	dir string
	mu  sync.Mutex
	m   map[string]*sharedLayer
}

type sharedLayer struct {
	mu    sync.Mutex // held while the layer is merged: others wait for it
	layer v1.Layer
}

// NewShared makes a Shared whose layers are written below dir ("" =
// os.TempDir()).
func NewShared(dir string) (*Shared, error) {
	d, err := os.MkdirTemp(dir, "ov-merge-shared-")
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	return &Shared{dir: d, m: map[string]*sharedLayer{}}, nil
}

// Close removes the shared layers' files.
func (s *Shared) Close() error { return os.RemoveAll(s.dir) }

// WithShared merges groups through s.
func WithShared(s *Shared) Option { return func(o *options) { o.shared = s } }

// layer returns the merge of layers, merging it unless an image before did.
// A failed merge is not remembered: the next asker tries again.
func (s *Shared) layer(ctx context.Context, layers []v1.Layer, first int, o options, mt types.MediaType) (v1.Layer, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%t\x00%d\x00", mt, o.uncompressed, o.level)
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(h, "%s\x00", d)
	}
	key := hex.EncodeToString(h.Sum(nil))
	s.mu.Lock()
	e := s.m[key]
	if e == nil {
		e = &sharedLayer{}
		s.m[key] = e
	}
	s.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.layer != nil {
		return e.layer, nil
	}
	l, err := mergeLayers(ctx, layers, first, s.dir, o, mt)
	if err != nil {
		return nil, err
	}
	e.layer = l
	return l, nil
}
