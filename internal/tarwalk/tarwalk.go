// Package tarwalk walks the entries of a tar stream: an image layer, or an
// image's flattened filesystem (mutate.Extract). The verify mode and the
// tests read images through it.
package tarwalk

import (
	"archive/tar"
	"errors"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Stream calls fn for each entry of the tar stream r, in order, with a
// reader of the entry's content (valid until fn returns). It stops at the
// first error, fn's or the stream's.
func Stream(r io.Reader, fn func(h *tar.Header, content io.Reader) error) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(h, tr); err != nil {
			return err
		}
	}
}

// Layer calls fn for each entry of l's uncompressed tar, as Stream does.
func Layer(l v1.Layer, fn func(h *tar.Header, content io.Reader) error) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	return Stream(rc, fn)
}
