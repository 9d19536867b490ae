package plan

import (
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/overthink/ov/spec"
)

// ownVolumes are the paths of the volumes img declares beyond its parent's.
func (b *builder) ownVolumes(img *spec.Image) []string {
	inherited := map[string]bool{}
	if parent := b.p.Images[img.Parent]; parent != nil {
		for _, v := range b.p.Volumes(parent) {
			inherited[v.Name] = true
		}
	}
	var out []string
	for _, v := range b.p.Volumes(img) {
		if !inherited[v.Name] {
			out = append(out, v.Path)
		}
	}
	return out
}

// volumeDirs is a root step that creates the mount points of the image's
// volumes owned by the user, or nil when there is nothing to create. An
// engine makes a new named volume from the directory it is mounted on,
// owner included, and creates a missing one owned by root: the user could
// then write neither to the volume nor, for ~/.ollama/models, next to it.
// Below home every directory from home down is the user's; elsewhere the
// mount point itself.
func volumeDirs(paths []string, u spec.User) *Step {
	if len(paths) == 0 || u.UID == 0 {
		return nil
	}
	var dirs []string
	for _, p := range paths {
		p = spec.ExpandHome(p, u.Home)
		for _, d := range homeDirs(p, u.Home) {
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
			}
		}
	}
	owner := strconv.Itoa(u.UID) + ":" + strconv.Itoa(u.GID)
	list := QuoteAll(dirs)
	return &Step{Kind: Run, User: "root", Shell: "mkdir -p " + list + " && chown " + owner + " " + list,
		Desc: "volume mount points"}
}

// homeDirs lists the directories from below home down to target when
// target is under home, else target alone.
func homeDirs(target, home string) []string {
	rel, ok := strings.CutPrefix(path.Clean(target), strings.TrimSuffix(home, "/")+"/")
	if !ok {
		return []string{path.Clean(target)}
	}
	parts := strings.Split(rel, "/")
	out := make([]string, len(parts))
	for k := range parts {
		out[k] = path.Join(home, strings.Join(parts[:k+1], "/"))
	}
	return out
}

// prepareCacheDirs inserts, before the first step with a user-owned cache
// mount, a root step that creates those mount targets and their parents
// below home owned by the user (and home, if the base lacks it). A cache
// mount creates missing parents owned by root, and the user then cannot write
// next to it (cargo's ~/.cargo/.crates.toml); a root-owned empty mount point
// would also stay behind in the image.
func prepareCacheDirs(steps []Step, u spec.User) []Step {
	first := -1
	var dirs []string
	for i, s := range steps {
		for _, m := range s.Mounts {
			if m.Kind != Cache || !m.Owned || !strings.HasPrefix(m.Target, strings.TrimSuffix(u.Home, "/")+"/") {
				continue
			}
			if first < 0 {
				first = i
			}
			for _, d := range homeDirs(m.Target, u.Home) {
				if !slices.Contains(dirs, d) {
					dirs = append(dirs, d)
				}
			}
		}
	}
	if first < 0 || u.UID == 0 {
		return steps
	}
	owner := strconv.Itoa(u.UID) + ":" + strconv.Itoa(u.GID)
	qh, list := Quote(u.Home), QuoteAll(dirs)
	prep := Step{Kind: Run, Layer: steps[first].Layer, User: "root",
		Shell: "{ [ -d " + qh + " ] || { mkdir -p " + qh + " && chown " + owner + " " + qh + "; }; } && " +
			"mkdir -p " + list + " && chown " + owner + " " + list,
		Desc: "user cache directories"}
	return slices.Insert(steps, first, prep)
}
