// Package explain says, before a build, which of an image's layers BuildKit
// will reuse and which it will rebuild, and why. After each successful build
// ov records what it built (a Record per image: the base digests, each
// step's fingerprint and the files the steps read); Diff compares the
// current inputs against that record the way the LLB back end caches them:
//
//   - an attached step (bootstrap, package installs, image-level steps)
//     reruns when the base changed or any attached step up to and including
//     it changed: the attached steps are one chain;
//   - a detached step (plan.Step.Detach) reruns when its own inputs changed,
//     an earlier step of its layer or a layer it depends on reruns, or the
//     attached chain up to its position changed.
//
// "Reuse" assumes the builder still holds the cache; BuildKit may have
// pruned it.
package explain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// version is bumped when Record's meaning changes; older records read as
// absent.
const version = 3

// Record is what an image was built from.
type Record struct {
	Version int    `json:"version"`
	Image   string `json:"image"`
	Builder string `json:"builder"` // buildkitd address: its cache is the one that may hold the steps
	// Base is the external reference, or the parent image's name when
	// Parent is set.
	Base   string `json:"base"`
	Parent bool   `json:"parent,omitempty"`
	// Digest is the external base reference's digest; "" when unknown or
	// for a parent.
	Digest string `json:"digest,omitempty"`
	// Platforms maps each platform built to the base's manifest digest for
	// it ("" when unknown or for a parent).
	Platforms map[string]string `json:"platforms"`
	// Steps are every step in build order: bootstrap, the environment,
	// the plan's steps, lint.
	Steps []Step `json:"steps"`
	// Stages are what steps copy or mount from, by stage name.
	Stages map[string]Stage `json:"stages,omitempty"`
	// Layers are the image's own layers in install order.
	Layers []string `json:"layers,omitempty"`
	// LayerYml maps each own layer to its layer.yml's digest ("" without
	// one): how a changed step is traced back to the file it came from.
	LayerYml map[string]string `json:"layer_yml,omitempty"`
	// Depends is plan.Image.Depends: the own layers each layer names in
	// depends (plan.Closure gives the transitive set).
	Depends map[string][]string `json:"depends,omitempty"`

	// Attached and SeeAll are what the build's detached-layer checks
	// decided (llb.Decided): the layers attached, and the layers built on
	// every layer before them. The steps are fingerprinted as arranged, and
	// the next build starts from the same decisions.
	Attached []string `json:"attached,omitempty"`
	SeeAll   []string `json:"see_all,omitempty"`

	// Exported is the digest of what the build exported (its image index
	// or manifest) and Outputs where it went, as the caller describes its
	// outputs: a later build with the same inputs and outputs whose
	// destinations still hold Exported has nothing to do (build.Run).
	// ExportedConfig is its image config's digest, for a one-platform
	// image: a container engine's image ID.
	Exported       string `json:"exported,omitempty"`
	ExportedConfig string `json:"exported_config,omitempty"`
	Outputs        string `json:"outputs,omitempty"`

	// DigestErr says why Digest is unknown; not recorded.
	DigestErr string `json:"-"`
}

// Step is one step's fingerprint.
type Step struct {
	Key    string   `json:"key"`             // "<layer>/<desc>#<n>": matches a step across builds
	Row    string   `json:"row"`             // the row it is reported in: the layer, RowSetup or RowImage
	Layer  string   `json:"layer,omitempty"` // "" for image-level steps
	Desc   string   `json:"desc"`
	Detach bool     `json:"detach,omitempty"`
	Pos    int      `json:"pos"`             // attached steps before it
	Hash   string   `json:"hash"`            // its own fields (and, detached, its layer's dependencies)
	Reads  []string `json:"reads,omitempty"` // stages it copies or mounts from
}

// Stage is the content of a stage steps read: a layer's files, a pixi
// build, supervisord fragments, traefik routes.
type Stage struct {
	Dir   string            `json:"dir,omitempty"`   // a layer's project-relative directory
	Hash  string            `json:"hash,omitempty"`  // generated content or stage settings
	Files map[string]string `json:"files,omitempty"` // project-relative path -> digest of mode and content
	Reads []string          `json:"reads,omitempty"` // stages it is built from
}

// Rows that are not layers.
const (
	RowSetup = "(setup)" // bootstrap, WORKDIR, ENV
	RowImage = "(image)" // image-level steps: pixi copies, supervisord, routes, lint
)

// Base is what an external base reference resolved to.
type Base struct {
	Digest    string            // the reference's digest
	Platforms map[string]string // platform -> manifest digest
	Err       error             // why the digests are unknown
}

// Inputs are what Fingerprint needs besides the plan.
type Inputs struct {
	Builder   string
	Platforms []string // the platforms built ("linux/amd64")
	Base      Base     // zero for an image built on a parent
	// Layers finds layer.yml of layers whose files no step reads
	// (spec.Project.Layers).
	Layers map[string]*spec.Layer
	// Files hashes the files (OpenFiles: shared by a run's images, with
	// the project's stat cache); nil hashes every file read.
	Files *Files
}

// Fingerprint reads img's inputs: its steps, the files they read and the
// base digests.
func Fingerprint(img *plan.Image, in Inputs) (*Record, error) {
	r := &Record{
		Version:   version,
		Image:     img.Name,
		Builder:   in.Builder,
		Platforms: map[string]string{},
		Stages:    map[string]Stage{},
		LayerYml:  map[string]string{},
	}
	if img.Parent != "" {
		r.Base, r.Parent = img.Parent, true
	} else {
		r.Base = img.External
	}
	for _, p := range in.Platforms {
		r.Platforms[p] = ""
	}
	r.SetBase(in.Base)
	r.Depends = img.Depends

	files := in.Files
	if files == nil {
		files = newFiles("")
	}
	for _, c := range img.Contexts {
		digests, err := files.Dir(c.Dir, c.Rel)
		if err != nil {
			return nil, fmt.Errorf("layer %q: %w", c.Layer, err)
		}
		r.Stages[c.Layer] = Stage{Dir: c.Rel, Files: digests}
	}
	for _, ps := range img.Pixi {
		r.Stages[ps.Stage] = Stage{Hash: hash(ps), Reads: []string{ps.Layer}}
	}
	if img.Fragments != nil {
		r.Stages[plan.StageSupervisord] = Stage{Hash: hash(img.Fragments)}
	}
	if img.Routes != nil {
		r.Stages[plan.StageTraefik] = Stage{Hash: hash(img.Routes)}
	}
	if img.Spec != nil {
		r.Layers = img.Spec.Install
		for _, l := range img.Spec.Install {
			r.LayerYml[l] = ""
			if ly := in.Layers[l]; ly != nil {
				r.LayerYml[l] = files.Content(filepath.Join(ly.Dir, "layer.yml"))
			}
		}
	}

	if err := img.Walk(&recorder{r: r, img: img, n: map[string]int{}}); err != nil {
		return nil, err
	}
	return r, nil
}

// recorder records an image's parts as steps, in the plan's order.
type recorder struct {
	r   *Record
	img *plan.Image
	n   map[string]int // steps so far per layer and description
	pos int            // attached steps so far
}

var _ plan.Visitor = (*recorder)(nil)

func (rc *recorder) Bootstrap(s plan.Step) error {
	if s.Kind == plan.FetchTask {
		rc.add(RowSetup, s, rc.img.Task)
	} else {
		rc.add(RowSetup, s)
	}
	return nil
}

// Config records WORKDIR, ENV, PATH and EXPOSE as the one "environment"
// step: all of it is in the exported config.
func (rc *recorder) Config(c plan.Config) error {
	rc.add(RowSetup, plan.Step{Desc: "environment"}, c)
	return nil
}

func (rc *recorder) Steps(steps []plan.Step) error {
	for _, s := range steps {
		row := s.Layer
		if row == "" {
			row = RowImage
		}
		rc.add(row, s)
	}
	return nil
}

func (rc *recorder) Lint(s plan.Step) error {
	rc.add(RowImage, s)
	return nil
}

// User records the final USER: a base's own user changes it without
// changing a step.
func (rc *recorder) User(u string) error {
	rc.add(RowImage, plan.Step{Desc: "user"}, u)
	return nil
}

func (rc *recorder) add(row string, s plan.Step, extra ...any) {
	key := s.Layer + "/" + s.Desc
	key += "#" + strconv.Itoa(rc.n[key])
	rc.n[s.Layer+"/"+s.Desc]++
	st := Step{Key: key, Row: row, Layer: s.Layer, Desc: s.Desc, Detach: s.Detach, Pos: rc.pos,
		Hash: hash(append([]any{stepFields(s)}, extra...))}
	if s.Detach {
		st.Hash = hash([]any{st.Hash, rc.img.AllDepends(s.Layer)})
	} else {
		rc.pos++
	}
	if s.Kind == plan.Copy {
		st.Reads = append(st.Reads, s.From)
	}
	for _, m := range s.Mounts {
		if m.Kind == plan.Bind && !contains(st.Reads, m.From) {
			st.Reads = append(st.Reads, m.From)
		}
	}
	rc.r.Steps = append(rc.r.Steps, st)
}

// SetBase records what the external base resolved to (a no-op for an
// image built on a parent), for the platforms r covers.
func (r *Record) SetBase(b Base) {
	if r.Parent {
		return
	}
	r.Digest, r.DigestErr = b.Digest, ""
	if b.Err != nil {
		r.DigestErr = b.Err.Error()
	}
	for p := range r.Platforms {
		r.Platforms[p] = b.Platforms[p]
	}
}

// stepFields are the fields of a step that decide what it does; Desc only
// names it.
func stepFields(s plan.Step) any {
	return []any{s.Kind, s.Layer, s.User, s.Detach, s.Shell, s.Mounts, s.From, s.Src, s.Dst, s.Chown}
}

func hash(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plan values always marshal
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
