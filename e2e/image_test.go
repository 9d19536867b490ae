package e2e

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/overthink/ov/internal/testenv"
)

// layoutImage returns the platform's image from an OCI layout directory.
func layoutImage(dir, platform string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, err
	}
	return testenv.FindImage(idx, platform)
}

// fileContent reads one regular file of the flattened image.
func fileContent(t *testing.T, dir, platform, file string) string {
	t.Helper()
	img, err := layoutImage(dir, platform)
	if err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s: %s not found", dir, file)
		}
		if err != nil {
			t.Fatal(err)
		}
		if path.Clean("/"+h.Name) == file {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
