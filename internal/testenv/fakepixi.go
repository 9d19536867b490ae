package testenv

import (
	"archive/tar"
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/overthink/ov/plan"
)

// FakePixi is a test double for the pixi image (ghcr.io is out of reach):
// the busybox base plus FakePixiScript at plan.PixiBinary, for linux/amd64
// and linux/arm64. The registry also serves it as plan.DefaultPixiImage
// (buildkitd mirrors ghcr.io to the registry), so plans built with the
// default options run their pixi stages in it.
const FakePixi = "docker.io/ovtest/fake-pixi:latest"

// FakePixiChecksums is the file, relative to an environment, in which the
// fake records the sha256sum lines of the files it installed from: the
// manifest, pixi.lock when present, and the environment.yml a pixi.toml was
// imported from.
const FakePixiChecksums = "conda-meta/fake-pixi.sha256"

// FakePixiScript is the fake's pixi. It does only what ov's pixi stages run
// (plan.pixiStage): `pixi install [--frozen]`, `pixi install --manifest-path
// pyproject.toml [--frozen]` and `pixi init --import environment.yml`;
// anything else fails, and so does --frozen without a pixi.lock. install reads the manifest's dependencies table ([dependencies], or
// [tool.pixi.dependencies] in pyproject.toml) and writes
// ./.pixi/envs/default with conda-meta/history, FakePixiChecksums and one
// bin/<name> script per dependency printing "<name> from fake pixi". An
// empty table gives an empty environment, as real pixi does (the shipped
// pixi layer relies on it); a missing manifest or table is an error. Output
// depends only on the inputs and the architecture, so repeated builds are
// byte-identical.
const FakePixiScript = `#!/bin/sh
# test double for pixi (ov internal/testenv): NOT pixi. See FakePixiScript.
set -eu

die() { echo "fake pixi: $*" >&2; exit 1; }

tab=$(printf '\t')

valid_name() {
	case $1 in '' | *[!A-Za-z0-9_.-]*) return 1 ;; esac
}

# check_deps FILE DEPS fails on a dependency name that is no plain package
# name (it becomes a file name under bin/).
check_deps() {
	printf '%s\n' "$2" | while IFS=$tab read -r name spec; do
		[ -z "$name" ] || valid_name "$name" || die "$1: bad dependency name '$name'"
	done
}

# toml_deps FILE TABLE prints "name<TAB>spec" for each key of [TABLE]; exit
# status 3 when FILE has no such table.
toml_deps() {
	awk -v want="[$2]" '
	/^[ \t]*\[/ { h = $0; sub(/#.*/, "", h); gsub(/[ \t]/, "", h); in_t = (h == want); if (in_t) found = 1; next }
	!in_t || /^[ \t]*(#|$)/ { next }
	{
		eq = index($0, "=")
		if (eq == 0) { printf "fake pixi: %s:%d: want key = value\n", FILENAME, NR > "/dev/stderr"; bad = 1; exit }
		k = substr($0, 1, eq - 1); v = substr($0, eq + 1)
		gsub(/^[ \t"]+|[ \t"]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v)
		print k "\t" v
	}
	END { if (bad) exit 1; if (!found) exit 3 }' "$1"
}

# yml_deps FILE prints "name<TAB>spec" for each conda entry of the
# top-level dependencies list (nested pip: lists are skipped); exit status 3
# when there is no such list.
yml_deps() {
	awk '
	/^dependencies:[ \t]*(#.*)?$/ { in_d = 1; found = 1; next }
	/^[^ \t#-]/ { in_d = 0 }
	!in_d || !/^[ \t]*-/ { next }
	{
		ind = index($0, "-")
		if (!depth) depth = ind
		if (ind != depth) next
		item = $0; sub(/^[ \t]*-[ \t]*/, "", item); sub(/[ \t]+#.*/, "", item); gsub(/["\047]/, "", item)
		if (item ~ /:$/) next
		n = match(item, /[=<>! ]/)
		if (n) { name = substr(item, 1, n - 1); spec = substr(item, n); sub(/^[ =]+/, "", spec) } else { name = item; spec = "*" }
		print name "\t" spec
	}
	END { if (!found) exit 3 }' "$1"
}

cmd_install() {
	cmdline="pixi install${*:+ $*}"
	manifest=pixi.toml
	frozen=
	while [ $# -gt 0 ]; do
		case $1 in
		--manifest-path)
			[ $# -ge 2 ] || die "install: --manifest-path needs a file"
			manifest=$2
			shift 2
			;;
		--manifest-path=*) manifest=${1#*=}; shift ;;
		--frozen) frozen=1; shift ;;
		*) die "install: unsupported argument '$1' (test double: only --manifest-path, --frozen)" ;;
		esac
	done
	[ -f "$manifest" ] || die "install: no manifest: $PWD/$manifest not found"
	[ -z "${frozen-}" ] || [ -f "$(dirname "$manifest")/pixi.lock" ] || die "install --frozen: no pixi.lock next to $manifest"
	case $manifest in
	pyproject.toml | */pyproject.toml) table=tool.pixi.dependencies ;;
	*) table=dependencies ;;
	esac
	rc=0
	deps=$(toml_deps "$manifest" "$table") || rc=$?
	[ $rc -ne 3 ] || die "install: $manifest has no [$table] table: no dependencies to install"
	[ $rc -eq 0 ] || exit 1

	check_deps "$manifest" "$deps"

	dir=$(dirname "$manifest")
	env=$dir/.pixi/envs/default
	rm -rf "$env"
	mkdir -p "$env/bin" "$env/conda-meta"
	{
		echo "==> fake pixi (test double) <=="
		echo "# cmd: $cmdline"
		echo "# platform: $(uname -m)"
	} >"$env/conda-meta/history"
	printf '%s\n' "$deps" | while IFS=$tab read -r name spec; do
		[ -n "$name" ] || continue
		printf '#!/bin/sh\necho "%s from fake pixi"\n' "$name" >"$env/bin/$name"
		chmod 755 "$env/bin/$name"
		echo "+fake-pixi::$name $spec" >>"$env/conda-meta/history"
	done
	# Names as the manifest was given, so sha256sum -c works in its directory.
	src=$(sed -n '1s/^# fake pixi: imported from //p' "$manifest")
	{
		sha256sum "$manifest"
		[ ! -f "$dir/pixi.lock" ] || (cd "$dir" && sha256sum pixi.lock)
		[ -z "$src" ] || (cd "$dir" && sha256sum "$src")
	} >"$env/` + FakePixiChecksums + `"
}

cmd_init() {
	src=
	while [ $# -gt 0 ]; do
		case $1 in
		--import)
			[ $# -ge 2 ] || die "init: --import needs a file"
			src=$2
			shift 2
			;;
		--import=*) src=${1#*=}; shift ;;
		*) die "init: unsupported argument '$1' (test double: only --import FILE)" ;;
		esac
	done
	[ -n "$src" ] || die "init: only 'pixi init --import FILE' is implemented (test double)"
	[ -f "$src" ] || die "init: $PWD/$src not found"
	[ ! -e pixi.toml ] || die "init: $PWD/pixi.toml already exists"
	valid_name "$src" || die "init: import file name '$src' must be in the working directory"
	rc=0
	deps=$(yml_deps "$src") || rc=$?
	[ $rc -ne 3 ] || die "init: $src has no dependencies list"
	[ $rc -eq 0 ] || exit 1
	check_deps "$src" "$deps"
	printf '%s\n' "$deps" | while IFS=$tab read -r dep spec; do
		case $spec in *[!A-Za-z0-9_.*=\<\>!,\ ]*) die "init: $src: bad version '$spec' of $dep" ;; esac
	done
	name=$(awk '/^name:/ { sub(/^name:[ \t]*/, ""); sub(/[ \t]+#.*/, ""); gsub(/["\047 \t]/, ""); print; exit }' "$src")
	valid_name "${name:-x}" || die "init: $src: bad name '$name'"
	{
		echo "# fake pixi: imported from $src"
		echo "[workspace]"
		echo "name = \"${name:-imported}\""
		echo 'channels = ["conda-forge"]'
		echo 'platforms = ["linux-64", "linux-aarch64"]'
		echo
		echo "[dependencies]"
		printf '%s\n' "$deps" | while IFS=$tab read -r dep spec; do
			[ -z "$dep" ] || echo "$dep = \"$spec\""
		done
	} >pixi.toml.fake-tmp
	mv pixi.toml.fake-tmp pixi.toml
}

case ${1-} in
install) shift; cmd_install "$@" ;;
init) shift; cmd_init "$@" ;;
--version) echo "pixi 0.0.0-fake (ov test double)" ;;
*) die "unsupported command '${1-}' (test double: only install, init --import, --version)" ;;
esac
`

// publishFakePixi adds the fake's layer to every image of the busybox
// layout and pushes the index under FakePixi and plan.DefaultPixiImage.
// It is derived afresh at each start (milliseconds, fixed timestamps, so
// the same digest each time): a script edit needs no cache bump.
func publishFakePixi(ctx context.Context, busyboxDir, host string) error {
	idx, err := fakePixiIndex(busyboxDir)
	if err != nil {
		return fmt.Errorf("fake pixi image: %w", err)
	}
	for _, r := range []string{FakePixi, plan.DefaultPixiImage} {
		ref, err := mirrorRef(host, r)
		if err != nil {
			return err
		}
		if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	return nil
}

func fakePixiIndex(busyboxDir string) (v1.ImageIndex, error) {
	return deriveBusybox(busyboxDir, []tarEntry{
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/local/", Mode: 0o755}},
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "usr/local/bin/", Mode: 0o755}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: plan.PixiBinary[1:], Mode: 0o755}, body: []byte(FakePixiScript)},
	})
}

// deriveBusybox adds a layer of entries to every image of the busybox
// layout.
func deriveBusybox(busyboxDir string, entries []tarEntry) (v1.ImageIndex, error) {
	lp, err := layout.ImageIndexFromPath(busyboxDir)
	if err != nil {
		return nil, err
	}
	top, err := lp.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(top.Manifests) != 1 || !top.Manifests[0].MediaType.IsIndex() {
		return nil, fmt.Errorf("%s: want one index in index.json", busyboxDir)
	}
	bb, err := lp.ImageIndex(top.Manifests[0].Digest)
	if err != nil {
		return nil, err
	}
	im, err := bb.IndexManifest()
	if err != nil {
		return nil, err
	}
	layer, err := memLayer(entries)
	if err != nil {
		return nil, err
	}
	out := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	for _, d := range im.Manifests {
		img, err := bb.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		if img, err = appendLayers(img, layer); err != nil {
			return nil, err
		}
		out = mutate.AppendManifests(out, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: d.Platform}})
	}
	return out, nil
}
