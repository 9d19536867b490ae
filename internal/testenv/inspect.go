package testenv

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/overthink/ov/internal/tarwalk"
)

// File is one entry of a flattened image filesystem.
type File struct {
	Type     byte   // tar type flag: tar.TypeReg, TypeDir, TypeSymlink, TypeLink, ...
	Mode     int64  // permission bits plus setuid/setgid/sticky, as in the tar header
	UID, GID int    // numeric owner
	Linkname string // symlink target as stored; hard links: the target path, "/"-rooted
	Size     int64  // regular files
	SHA256   string // hex digest of the content (hard links: of their target)
}

// Snapshot is what a test inspects of one built image.
type Snapshot struct {
	Platform v1.Platform
	Config   v1.Config       // Env, User, WorkingDir, ExposedPorts, Cmd, ...
	Files    map[string]File // by clean absolute path: "/etc/passwd"
}

// ReadOCI reads the image for platform ("linux/arm64"; "" when there is only
// one) from an OCI layout directory, or a tar of one (buildkit type=oci or
// type=docker output), and flattens it.
func ReadOCI(p, platform string) (*Snapshot, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	dir := p
	if !fi.IsDir() {
		if dir, err = os.MkdirTemp("", "ovtestenv-oci-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := untar(p, dir); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	var img v1.Image
	if fileExists(filepath.Join(dir, "index.json")) {
		idx, err := layout.ImageIndexFromPath(dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if img, err = FindImage(idx, platform); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	} else if img, err = tarball.ImageFromPath(p, nil); err != nil { // docker save format
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return Snap(img)
}

// Snap flattens img into a Snapshot.
func Snap(img v1.Image) (*Snapshot, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	files, err := Flatten(img)
	if err != nil {
		return nil, err
	}
	return &Snapshot{
		Platform: v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant},
		Config:   cf.Config,
		Files:    files,
	}, nil
}

// Flatten walks img's layers top-down honouring whiteouts and opaque
// directories (mutate.Extract) into path -> File.
func Flatten(img v1.Image) (map[string]File, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]File{}
	err := tarwalk.Stream(rc, func(h *tar.Header, content io.Reader) error {
		f := File{Type: h.Typeflag, Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid, Linkname: h.Linkname}
		if h.Typeflag == tar.TypeLink {
			f.Linkname = "/" + path.Clean(strings.TrimPrefix(h.Linkname, "/"))
		}
		if h.Typeflag == tar.TypeReg {
			d := sha256.New()
			var err error
			if f.Size, err = io.Copy(d, content); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			f.SHA256 = hex.EncodeToString(d.Sum(nil))
		}
		files["/"+path.Clean(strings.TrimPrefix(h.Name, "/"))] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("flatten: %w", err)
	}
	// Hard links may come before their target (upper layers first).
	for p, f := range files {
		if f.Type == tar.TypeLink {
			t := files[f.Linkname]
			f.Size, f.SHA256 = t.Size, t.SHA256
			files[p] = f
		}
	}
	return files, nil
}

// FindImage returns the image for platform in idx, descending into nested
// indexes and skipping attestation manifests. platform "" accepts the only
// image there is. Tags of one image (a layout holding CalVer and latest)
// count once.
func FindImage(idx v1.ImageIndex, platform string) (v1.Image, error) {
	var want *v1.Platform
	if platform != "" {
		p, err := platforms.Parse(platform)
		if err != nil {
			return nil, err
		}
		want = &v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}
	}
	var found []v1.Image
	var seen []string
	digests := map[v1.Hash]bool{}
	var walk func(v1.ImageIndex) error
	walk = func(idx v1.ImageIndex) error {
		im, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		for _, d := range im.Manifests {
			if d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
				continue
			}
			if d.MediaType.IsIndex() {
				child, err := idx.ImageIndex(d.Digest)
				if err != nil {
					return err
				}
				if err := walk(child); err != nil {
					return err
				}
				continue
			}
			if !d.MediaType.IsImage() || digests[d.Digest] {
				continue
			}
			digests[d.Digest] = true
			img, err := idx.Image(d.Digest)
			if err != nil {
				return err
			}
			p := d.Platform
			if p == nil {
				cf, err := img.ConfigFile()
				if err != nil {
					return err
				}
				p = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
			}
			seen = append(seen, p.String())
			if want == nil || platformMatch(*p, *want) {
				found = append(found, img)
			}
		}
		return nil
	}
	if err := walk(idx); err != nil {
		return nil, err
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0:
		return nil, fmt.Errorf("no image for platform %q (have %v)", platform, seen)
	default:
		return nil, fmt.Errorf("%d images match platform %q (have %v)", len(found), platform, seen)
	}
}

// platformMatch compares OS and architecture, and the variant when both
// name one (arm64 is "v8" or nothing depending on the tool).
func platformMatch(have, want v1.Platform) bool {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	return have.Variant == "" || want.Variant == "" || have.Variant == want.Variant
}

// untar extracts a plain tar (an exported OCI layout) into dir.
func untar(src, dir string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean("/" + h.Name)
		dst := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			out, err := os.Create(dst)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return errors.New("unexpected entry " + h.Name + " in OCI tar")
		}
	}
}
