package export

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// linkBlobs hard-links the blobs of the layout at dest (if any) into the new
// layout at tmp, so an unchanged layer is not written again.
func linkBlobs(dest, tmp string) error {
	algs, err := os.ReadDir(filepath.Join(dest, "blobs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, alg := range algs {
		blobs, err := os.ReadDir(filepath.Join(dest, "blobs", alg.Name()))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(tmp, "blobs", alg.Name()), 0o755); err != nil {
			return err
		}
		for _, b := range blobs {
			if !b.Type().IsRegular() {
				continue
			}
			err := os.Link(filepath.Join(dest, "blobs", alg.Name(), b.Name()), filepath.Join(tmp, "blobs", alg.Name(), b.Name()))
			if err != nil {
				return nil // another filesystem or no links: write everything anew
			}
		}
	}
	return nil
}

// pruneBlobs removes the blobs of the layout at dir that its index does not
// reach (those linked from an older layout that the new image dropped).
func pruneBlobs(dir string) error {
	keep := map[digest.Digest]bool{}
	var walk func(data []byte) error
	walk = func(data []byte) error {
		var doc struct {
			Manifests []ocispecs.Descriptor `json:"manifests"`
			Config    *ocispecs.Descriptor  `json:"config"`
			Layers    []ocispecs.Descriptor `json:"layers"`
			Subject   *ocispecs.Descriptor  `json:"subject"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return err
		}
		descs := append(slices.Clone(doc.Manifests), doc.Layers...)
		for _, d := range []*ocispecs.Descriptor{doc.Config, doc.Subject} {
			if d != nil {
				descs = append(descs, *d)
			}
		}
		for _, d := range descs {
			if keep[d.Digest] || d.Digest.Validate() != nil {
				continue
			}
			keep[d.Digest] = true
			if strings.Contains(d.MediaType, "manifest") || strings.Contains(d.MediaType, "index") {
				b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded()))
				if err != nil {
					return err
				}
				if err := walk(b); err != nil {
					return err
				}
			}
		}
		return nil
	}
	index, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return err
	}
	if err := walk(index); err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	algs, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil {
		return err
	}
	for _, alg := range algs {
		blobs, err := os.ReadDir(filepath.Join(dir, "blobs", alg.Name()))
		if err != nil {
			return err
		}
		for _, b := range blobs {
			if !keep[digest.NewDigestFromEncoded(digest.Algorithm(alg.Name()), b.Name())] {
				if err := os.Remove(filepath.Join(dir, "blobs", alg.Name(), b.Name())); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// tempDirBeside makes dest's directory and a temp directory in it, to be
// renamed to dest when complete.
func tempDirBeside(dest string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", err
	}
	return os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-")
}

// replaceDir moves tmp to dest, replacing what dest held.
func replaceDir(tmp, dest string) error {
	old := ""
	if _, err := os.Lstat(dest); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dest, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dest); err != nil {
		if old != "" {
			os.Rename(old, dest)
		}
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// writeLayout writes idx as an OCI layout at dir, hard-linking the blobs it
// shares with the layouts at from (which need not exist) instead of copying.
func writeLayout(dir string, idx v1.ImageIndex, from ...string) error {
	for _, f := range from {
		linkNew(f, dir)
	}
	if _, err := layout.Write(dir, idx); err != nil {
		return err
	}
	return pruneBlobs(dir)
}

// linkNew hard-links the blobs of the layout at from that dir lacks; it
// stops quietly where links don't work (another filesystem): the layout
// writer copies what is missing.
func linkNew(from, dir string) {
	algs, err := os.ReadDir(filepath.Join(from, "blobs"))
	if err != nil {
		return
	}
	for _, alg := range algs {
		blobs, err := os.ReadDir(filepath.Join(from, "blobs", alg.Name()))
		if err != nil || os.MkdirAll(filepath.Join(dir, "blobs", alg.Name()), 0o755) != nil {
			return
		}
		for _, b := range blobs {
			to := filepath.Join(dir, "blobs", alg.Name(), b.Name())
			if !b.Type().IsRegular() {
				continue
			}
			if _, err := os.Lstat(to); err == nil {
				continue
			}
			if os.Link(filepath.Join(from, "blobs", alg.Name(), b.Name()), to) != nil {
				return
			}
		}
	}
}
