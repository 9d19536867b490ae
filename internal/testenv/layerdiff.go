package testenv

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/overthink/ov/internal/tarwalk"
)

// LayerDiff says how the image for platform ("" when there is only one)
// differs between the OCI layouts a and b: per layer that differs, its
// entries whose header (mtime included) or content differ, and the
// configs when they do. For a reproducibility test's failure message.
func LayerDiff(a, b, platform string) string {
	imgs := make([]v1.Image, 2)
	for i, dir := range []string{a, b} {
		idx, err := layout.ImageIndexFromPath(dir)
		if err != nil {
			return err.Error()
		}
		if imgs[i], err = FindImage(idx, platform); err != nil {
			return err.Error()
		}
	}
	var sb strings.Builder
	cfgs := make([][]byte, 2)
	for i, img := range imgs {
		cfgs[i], _ = img.RawConfigFile()
	}
	if string(cfgs[0]) != string(cfgs[1]) {
		fmt.Fprintf(&sb, "configs differ:\n  %s\n  %s\n", cfgs[0], cfgs[1])
	}
	la, err := imgs[0].Layers()
	if err != nil {
		return err.Error()
	}
	lb, err := imgs[1].Layers()
	if err != nil {
		return err.Error()
	}
	if len(la) != len(lb) {
		fmt.Fprintf(&sb, "%d layers, then %d\n", len(la), len(lb))
	}
	for i := range min(len(la), len(lb)) {
		da, _ := la[i].Digest()
		db, _ := lb[i].Digest()
		if da == db {
			continue
		}
		ea, err := entries(la[i])
		if err != nil {
			return err.Error()
		}
		eb, err := entries(lb[i])
		if err != nil {
			return err.Error()
		}
		var names []string
		for n := range ea {
			names = append(names, n)
		}
		for n := range eb {
			if _, ok := ea[n]; !ok {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		fmt.Fprintf(&sb, "layer %d: %s, then %s\n", i, da, db)
		shown := 0
		for _, n := range names {
			if ea[n] != eb[n] && shown < 20 {
				fmt.Fprintf(&sb, "  %s: %q, then %q\n", n, ea[n], eb[n])
				shown++
			}
		}
	}
	return sb.String()
}

// entries describes each entry of a layer: header fields and content hash.
func entries(l v1.Layer) (map[string]string, error) {
	out := map[string]string{}
	err := tarwalk.Layer(l, func(h *tar.Header, content io.Reader) error {
		sum := sha256.New()
		if _, err := io.Copy(sum, content); err != nil {
			return err
		}
		out[h.Name] = fmt.Sprintf("type %c mode %o %d:%d size %d mtime %d link %s pax %v sha %s",
			h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size, h.ModTime.Unix(), h.Linkname, h.PAXRecords, hex.EncodeToString(sum.Sum(nil))[:12])
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
