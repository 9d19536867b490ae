package merge

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Group is a run of consecutive layers that Image turns into one layer, or a
// single layer it keeps as-is.
type Group struct {
	Layers    []int     // indices into the image's layers, consecutive, oldest first
	Sizes     []int64   // compressed size of each layer (nil: unknown, see FromEngine)
	Digests   []v1.Hash // compressed digest of each layer (nil: unknown, see FromEngine)
	CreatedBy []string  // history created_by of each layer, for reports ("" when unknown)
}

// Merge reports whether the group becomes a new layer (2+ layers).
func (g Group) Merge() bool { return len(g.Layers) > 1 }

// Size is the sum of the group's compressed layer sizes.
func (g Group) Size() int64 {
	var n int64
	for _, s := range g.Sizes {
		n += s
	}
	return n
}

// Plan groups consecutive layers of img whose compressed sizes add up to at
// most maxBytes. A layer larger than maxBytes is a group of its own, and so is
// a layer an earlier merge made with a limit of at least maxBytes: re-merging
// with the same limit keeps every layer (merging is idempotent).
func Plan(img v1.Image, maxBytes int64) ([]Group, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("merge: max size must be > 0, got %d", maxBytes)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("merge: reading layers: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("merge: reading config: %w", err)
	}
	createdBy := layerCreatedBy(cfg.History, len(layers))

	var groups []Group
	var cur Group
	flush := func() {
		if len(cur.Layers) > 0 {
			groups = append(groups, cur)
			cur = Group{}
		}
	}
	for i, l := range layers {
		size, err := l.Size()
		if err != nil {
			return nil, fmt.Errorf("merge: layer %d: size: %w", i, err)
		}
		digest, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("merge: layer %d: digest: %w", i, err)
		}
		alone := size > maxBytes
		if max, ok := mergedMax(createdBy[i]); ok && max >= maxBytes {
			alone = true
		}
		if alone || cur.Size()+size > maxBytes {
			flush()
		}
		cur.Layers = append(cur.Layers, i)
		cur.Sizes = append(cur.Sizes, size)
		cur.Digests = append(cur.Digests, digest)
		cur.CreatedBy = append(cur.CreatedBy, createdBy[i])
		if alone {
			flush()
		}
	}
	flush()
	return groups, nil
}

// WritePlan writes a dry-run report of groups: one line per layer with its
// size, digest and [keep] or [merge N], then a summary line.
func WritePlan(w io.Writer, groups []Group) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tSIZE\tDIGEST\tACTION\tCREATED BY")
	var layers, merged, into, out int
	for _, g := range groups {
		action := "[keep]"
		if g.Merge() {
			into++
			merged += len(g.Layers)
			action = fmt.Sprintf("[merge %d]", into)
		}
		out++
		for k, i := range g.Layers {
			layers++
			size, digest := "-", "-" // unknown without a save (FromEngine)
			if k < len(g.Sizes) && k < len(g.Digests) {
				size, digest = humanSize(g.Sizes[k]), shortDigest(g.Digests[k])
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i, size, digest, action, shorten(g.CreatedBy[k], 60))
		}
		if g.Merge() {
			fmt.Fprintf(tw, "\t%s\t\t%s\t= 1 layer\n", humanSize(g.Size()), action)
		}
	}
	fmt.Fprintf(tw, "%d layers -> %d layers: %d merged into %d\n", layers, out, merged, into)
	return tw.Flush()
}

// layerHistory maps each of n layers to its history entry. ok is false when
// the non-empty history entries don't line up with the layers.
func layerHistory(h []v1.History, n int) (idx []int, ok bool) {
	for i, e := range h {
		if !e.EmptyLayer {
			idx = append(idx, i)
		}
	}
	return idx, len(idx) == n
}

// layerCreatedBy returns each layer's history created_by ("" when unknown).
func layerCreatedBy(h []v1.History, n int) []string {
	out := make([]string, n)
	if idx, ok := layerHistory(h, n); ok {
		for i, e := range idx {
			out[i] = h[e].CreatedBy
		}
	}
	return out
}

// mergedCreatedBy is the history created_by of a merged layer; mergedMax
// reads the limit back so Plan can keep the layer on a re-merge.
func mergedCreatedBy(maxBytes int64, createdBy []string) string {
	s := fmt.Sprintf("ov merge: %d layers (max %d B)", len(createdBy), maxBytes)
	var parts []string
	for _, c := range createdBy {
		if c = shorten(c, 80); c != "" {
			parts = append(parts, c)
		}
	}
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, "; ")
	}
	return s
}

var mergedRE = regexp.MustCompile(`^ov merge: \d+ layers \(max (\d+) B\)`)

// A tab counts as a space: `docker history`, where FromEngine reads the
// mark without saving the image, prints tabs so (ov writes spaces).
func mergedMax(createdBy string) (int64, bool) {
	m := mergedRE.FindStringSubmatch(strings.ReplaceAll(createdBy, "\t", " "))
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	return n, err == nil
}

// shorten makes a created_by fit a report line: drops the shell prefix,
// collapses whitespace and cuts it at max runes.
func shorten(s string, max int) string {
	s = strings.TrimPrefix(s, "/bin/sh -c ")
	s = strings.TrimPrefix(s, "#(nop) ")
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

func shortDigest(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Algorithm + ":" + h.Hex[:12]
	}
	return h.String()
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n)/unit, 0
	for f >= unit && u < 4 {
		f /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTP"[u])
}
