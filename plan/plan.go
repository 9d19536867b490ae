// Package plan turns a resolved image into the ordered build steps that both
// back ends read: the Containerfile emitter (generate/) and the LLB compiler
// (llb/). Every shell command an image runs is decided here, once, so the two
// back ends cannot drift.
package plan

import "github.com/overthink/ov/spec"

// Image is the build plan of one image. Walk applies its parts after FROM
// in the one order the back ends follow.
type Image struct {
	Name string
	Spec *spec.Image
	User spec.User // resolved user (from the base's /etc/passwd, the parent, or the config)

	// Exactly one of External and Parent is set.
	External  string // external base reference
	Parent    string // parent image name (base is another image)
	ParentRef string // stable reference standing for the parent in the child's Containerfile

	Tags      []string // full references to tag the result with
	Platforms []string
	// Epoch is SOURCE_DATE_EPOCH, nil for none: the image's created and
	// history times and the clamp for its files' mtimes.
	Epoch *Epoch
	// Labels go into the image config, Annotations onto its manifests:
	// the OCI keys and ov's (Key*), from both back ends alike.
	Labels      map[string]string
	Annotations map[string]string

	Contexts []Context   // scratch stages: one per layer whose files steps use
	Pixi     []PixiStage // pixi build stages, in layer order
	Routes   []byte      // traefik-routes.yml content; nil when no route layers
	// Fragments are supervisord fragments in assembly order (00-header.conf,
	// NN-<layer>.conf); nil when no service layers.
	Fragments []File

	// Bootstrap runs right after FROM for an external base (tools, task,
	// user), then WORKDIR Workdir. For a parent base it is empty, or the
	// user step of a child with a user of its own.
	Bootstrap []Step
	Workdir   string // "" keeps the base's
	// Task is where the bootstrap's FetchTask step gets the task archive
	// (TaskSource.ArchiveURL).
	Task TaskSource

	Env        []EnvVar // sorted by key, values expanded (~, $HOME)
	PathAppend []string // expanded; prepended to the base's PATH as "a:b:${PATH}"
	Expose     []int    // deduplicated, sorted

	// Steps are everything after ENV/EXPOSE: pixi copies, per-layer steps,
	// supervisord assembly, traefik routes, in order.
	Steps []Step

	// Depends maps each own layer to the own layers its layer.yml names in
	// depends (layers a parent installs are in the base already); see
	// AllDepends for the transitive set.
	Depends map[string][]string

	FinalUser string // numeric UID, the last USER
	// Lint is bootc container lint, run as root after the steps and before
	// USER FinalUser (which changes no file); nil unless bootc.
	Lint *Step
}

// Epoch is the time an image says it was built (SOURCE_DATE_EPOCH).
// The exporters stamp it (created, history, layer file mtimes clamped to
// it), so it enters no cache key; only an explicit one reaches the steps'
// environment, where it does.
type Epoch struct {
	Unix int64
	// Explicit: given by --source-date-epoch or SOURCE_DATE_EPOCH. Every
	// step then sees SOURCE_DATE_EPOCH (as the Dockerfile frontend gives it
	// to the RUNs after ARG SOURCE_DATE_EPOCH), and changing it reruns them.
	// A default epoch (the last commit's time, or now) changes with every
	// commit or run and would rebuild every step each time: it stays out.
	Explicit bool
	// Now: no clean git checkout to take it from; the build's own time,
	// which differs run to run.
	Now bool
}

// EpochEnv is the environment variable (and build argument) of the epoch.
const EpochEnv = "SOURCE_DATE_EPOCH"

// Context is a layer's files as a scratch stage named after the layer.
type Context struct {
	Layer string // layer and stage name
	Dir   string // absolute directory (layers/<name>)
	Rel   string // directory relative to the project, for the Containerfile COPY
}

// PixiStage builds one pixi layer's environment in a pixi image.
type PixiStage struct {
	Layer    string
	Stage    string   // "<layer>-pixi-build"
	Image    string   // pixi image reference
	Manifest string   // "pixi.toml", "pyproject.toml" or "environment.yml"
	Files    []string // layer files copied into Workdir: Manifest, then pixi.lock if the layer has one
	Workdir  string   // project dir in the stage: the user's home, so env paths match the final image
	Setup    string   // shell command run first, as the pixi image's user ("" for none): tools the install needs (a compiler, git)
	Install  string   // shell command run in Workdir
	EnvDir   string   // <home>/.pixi/envs/default: copied into the image
}

// File is a generated file: name and content.
type File struct {
	Name    string
	Content []byte
}

// EnvVar is one ENV entry.
type EnvVar struct {
	Key, Value string
}

// Kind says what a step does.
type Kind int

const (
	Run       Kind = iota // run Shell with /bin/sh -c
	Copy                  // copy Src from stage From to Dst
	FetchTask             // fetch the task archive for the platform and run Shell to unpack it from TaskArchive
)

// TaskArchive is where a FetchTask step finds the downloaded archive.
const TaskArchive = "/tmp/task.tar.gz"

// Step is one instruction. Steps of a layer share Layer; image-level steps
// have Layer "".
type Step struct {
	Kind  Kind
	Layer string
	User  string // "root" or a numeric UID: the USER in effect for the step
	Desc  string // readable description, used for image history created_by

	// Detach says the step need not see every step before it: only the
	// image's attached steps before it, the earlier steps of its own layer
	// and the layers it depends on. The LLB compiler runs it there and
	// merges its changes back in place (DiffOp/MergeOp), so an edit to one
	// layer does not rebuild the unrelated layers after it. Set for steps
	// that only add files of their own (root.yml, package.json, Cargo.toml,
	// user.yml) of layers no attached step depends on; package installs
	// and image-level steps stay attached. Containerfiles ignore it.
	Detach bool

	// Run and FetchTask.
	Shell  string
	Mounts []Mount

	// Copy.
	From  string // stage name
	Src   string
	Dst   string
	Chown string // "uid:gid" or ""
}

// MountKind is a RUN mount type.
type MountKind int

const (
	Cache MountKind = iota
	Bind
)

// Mount is a RUN --mount.
type Mount struct {
	Kind   MountKind
	Target string

	// Cache.
	ID      string // stable id shared across images: purpose and uid
	Sharing string // "locked", "shared" or "" (default shared)
	Owned   bool   // UID/GID apply (user caches)
	UID     int
	GID     int

	// Bind: From's Source at Target, read-only.
	From   string
	Source string
}

// TaskSource says where the bootstrap fetches task from.
type TaskSource struct {
	// URL is the directory holding task_linux_<arch>.tar.gz.
	URL string
	// SHA256 optionally pins each archive by arch ("amd64", "arm64").
	SHA256 map[string]string
}
