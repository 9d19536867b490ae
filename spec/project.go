package spec

import (
	"fmt"
	"strings"
	"time"
)

// Layer returns the named layer, or nil.
func (p *Project) Layer(name string) *Layer { return p.Layers[name] }

// Image returns the named image, or nil.
func (p *Project) Image(name string) *Image { return p.Images[name] }

// LayersOf returns the layers img installs itself (img.Install), in order.
func (p *Project) LayersOf(img *Image) []*Layer {
	out := make([]*Layer, 0, len(img.Install))
	for _, name := range img.Install {
		out = append(out, p.Layers[name])
	}
	return out
}

// Chain returns img's base chain: the root ancestor first, img last.
func (p *Project) Chain(img *Image) []*Image {
	var chain []*Image
	seen := map[string]bool{}
	for cur := img; cur != nil && !seen[cur.Name]; cur = p.Images[cur.Parent] {
		seen[cur.Name] = true
		chain = append(chain, cur)
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain
}

// LayerNames returns every layer name, sorted.
func (p *Project) LayerNames() []string { return sortedKeys(p.Layers) }

// Ref is the image's repository: registry + "/" + name, or name without a
// registry.
func (img *Image) Ref() string {
	if img.Registry == "" {
		return img.Name
	}
	return img.Registry + "/" + img.Name
}

// Tags returns the full references to tag a build of img with. "auto"
// gives <ref>:<calver> and <ref>:latest; a non-empty override replaces the
// CalVer (as `ov generate --tag` does), so <ref>:<override> and
// <ref>:latest; any other tag (pinned, such as "1.2.3") gives just
// <ref>:<tag>, override or not.
func (img *Image) Tags(calver, override string) []string {
	if img.Tag != "auto" {
		return []string{img.Ref() + ":" + img.Tag}
	}
	version := calver
	if override != "" && override != "auto" {
		version = override
	}
	if version == "latest" {
		return []string{img.Ref() + ":latest"}
	}
	return []string{img.Ref() + ":" + version, img.Ref() + ":latest"}
}

// KV is an environment variable.
type KV struct{ Key, Value string }

// Env merges the env and path_append of layers, in order: a later layer's
// value wins for the same key; path_append entries accumulate in order
// (repeats dropped). A leading "~" and every "$HOME"/"${HOME}" expand to
// home. env is sorted by key.
func Env(layers []*Layer, home string) (env []KV, pathAppend []string) {
	vals := map[string]string{}
	seen := map[string]bool{}
	for _, l := range layers {
		for k, v := range l.Env {
			vals[k] = ExpandHome(v, home)
		}
		for _, p := range l.PathAppend {
			p = ExpandHome(p, home)
			if !seen[p] {
				seen[p] = true
				pathAppend = append(pathAppend, p)
			}
		}
	}
	for _, k := range sortedKeys(vals) {
		env = append(env, KV{Key: k, Value: vals[k]})
	}
	return env, pathAppend
}

// ExpandHome replaces a leading "~" (alone or before "/") and every "$HOME"
// or "${HOME}" in s with home.
func ExpandHome(s, home string) string {
	if s == "~" || strings.HasPrefix(s, "~/") {
		s = home + s[1:]
	}
	s = strings.ReplaceAll(s, "${HOME}", home)
	// $HOME, but not $HOMER.
	var b strings.Builder
	for {
		i := strings.Index(s, "$HOME")
		if i < 0 {
			break
		}
		end := i + len("$HOME")
		if end < len(s) && isIdentByte(s[end]) {
			b.WriteString(s[:end])
		} else {
			b.WriteString(s[:i])
			b.WriteString(home)
		}
		s = s[end:]
	}
	b.WriteString(s)
	return b.String()
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// CalVer returns the version for t: "YYYY.DDD.HHMM" in UTC, where DDD is the
// day of the year (1-366) and HHMM is hour*100+minute, all without zero
// padding (09:05 on day 47 of 2026 is "2026.47.905", 00:00 on 1 January is
// "2026.1.0"). Each part is a plain number, so the result is a valid semver
// version, and semver's numeric ordering of major.minor.patch is the
// chronological order (to the minute).
func CalVer(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%d.%d.%d", t.Year(), t.YearDay(), t.Hour()*100+t.Minute())
}
