package testenv

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/overthink/ov/internal/tarwalk"
)

// recipe versions: bump one to rebuild that cached base everywhere.
const (
	debianRecipe   = "debian-bookworm-v2"
	userRecipe     = "userbase-bookworm-v1"
	busyboxRecipe  = "busybox-v3"
	hostCADir      = "/usr/local/share/ca-certificates"
	debianKeyring  = "/usr/share/keyrings/debian-archive-keyring.gpg"
	defaultMirror  = "http://deb.debian.org/debian"
	defaultSecMirr = "http://deb.debian.org/debian-security"
	stdPath        = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// DpkgSpeedup is the dpkg config file of the Debian base that turns on
// force-unsafe-io, named as in the published debian image.
const DpkgSpeedup = "etc/dpkg/dpkg.cfg.d/docker-apt-speedup"

// publishBases builds (or loads from cache) the base images and pushes them
// to the registry at host, under their docker.io repository paths, and the
// fake pixi image built on busybox.
func publishBases(ctx context.Context, cache, host string) error {
	mirror, security := aptMirrors()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		debDir, err := cached(cache, debianRecipe+"-"+debianKey(mirror, security), func(out, scratch string) error {
			return buildDebian(gctx, scratch, out, mirror, security)
		})
		if err != nil {
			return fmt.Errorf("base %s: %w", Debian, err)
		}
		if err := pushLayout(gctx, debDir, host, Debian, "docker.io/library/debian:12"); err != nil {
			return err
		}
		dir, err := cached(cache, userRecipe+"-"+filepath.Base(debDir), func(out, _ string) error {
			return buildUserBase(debDir, out)
		})
		if err != nil {
			return fmt.Errorf("base %s: %w", UserBase, err)
		}
		return pushLayout(gctx, dir, host, UserBase)
	})
	g.Go(func() error {
		dir, err := cached(cache, busyboxRecipe, func(out, scratch string) error {
			return buildBusybox(gctx, scratch, out, mirror, security)
		})
		if err != nil {
			return fmt.Errorf("base %s: %w", Busybox, err)
		}
		if err := pushLayout(gctx, dir, host, Busybox); err != nil {
			return err
		}
		if err := publishBootcBase(gctx, dir, host); err != nil {
			return err
		}
		return publishFakePixi(gctx, dir, host)
	})
	return g.Wait()
}

// pushLayout pushes the one image or index that a cached OCI layout holds
// to host under each docker.io ref.
func pushLayout(ctx context.Context, dir, host string, refs ...string) error {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if len(im.Manifests) != 1 {
		return fmt.Errorf("%s: %d manifests in index.json, want 1", dir, len(im.Manifests))
	}
	desc := im.Manifests[0]
	for _, r := range refs {
		ref, err := mirrorRef(host, r)
		if err != nil {
			return err
		}
		if desc.MediaType.IsIndex() {
			var child v1.ImageIndex
			if child, err = idx.ImageIndex(desc.Digest); err == nil {
				err = remote.WriteIndex(ref, child, remote.WithContext(ctx))
			}
		} else {
			var img v1.Image
			if img, err = idx.Image(desc.Digest); err == nil {
				err = remote.Write(ref, img, remote.WithContext(ctx))
			}
		}
		if err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	return nil
}

// mirrorRef maps docker.io/library/debian:bookworm to host/library/debian:bookworm,
// the path a docker.io mirror is asked for.
func mirrorRef(host, ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	return name.ParseReference(host+"/"+r.Context().RepositoryStr()+":"+r.Identifier(), name.Insecure)
}

// aptMirrors reads the Debian and security mirrors from the host's deb822
// sources, so bases download where the host's apt does.
func aptMirrors() (mirror, security string) {
	mirror, security = defaultMirror, defaultSecMirr
	data, err := os.ReadFile("/etc/apt/sources.list.d/debian.sources")
	if err != nil {
		return
	}
	for _, stanza := range strings.Split(string(data), "\n\n") {
		var uris, suites string
		for _, line := range strings.Split(stanza, "\n") {
			if v, ok := strings.CutPrefix(line, "URIs:"); ok {
				uris = strings.Fields(v)[0]
			}
			if v, ok := strings.CutPrefix(line, "Suites:"); ok {
				suites = " " + strings.TrimSpace(v) + " "
			}
		}
		switch {
		case uris == "":
		case strings.Contains(suites, " bookworm-security "):
			security = uris
		case strings.Contains(suites, " bookworm "):
			mirror = uris
		}
	}
	return
}

// hostCAs lists the proxy CA files that builds inside the bases need.
func hostCAs() ([]string, error) {
	entries, err := os.ReadDir(hostCADir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".crt") {
			out = append(out, filepath.Join(hostCADir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// debianKey changes when the inputs of the Debian base do: mirrors and CAs.
func debianKey(mirror, security string) string {
	h := sha256.New()
	fmt.Fprintln(h, mirror, security)
	cas, _ := hostCAs()
	for _, p := range cas {
		data, _ := os.ReadFile(p)
		fmt.Fprintln(h, filepath.Base(p), len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// buildDebian debootstraps minbase bookworm, adds the host CAs, cleans apt
// state and writes the image as an OCI layout into out.
func buildDebian(ctx context.Context, work, out, mirror, security string) error {
	rootfs := filepath.Join(work, "rootfs")
	logf := fmt.Sprintf("testenv: debootstrap bookworm from %s (cold cache, a few minutes)\n", mirror)
	os.Stderr.WriteString(logf)
	if _, err := run(ctx, "", nil, "debootstrap", "--variant=minbase", "--arch=amd64",
		"--include=ca-certificates", "--keyring="+debianKeyring,
		"bookworm", rootfs, mirror); err != nil {
		return err
	}
	// debootstrap mounts proc/sys while installing; never tar through a mount.
	if err := unmountUnder(rootfs); err != nil {
		return err
	}
	cas, err := hostCAs()
	if err != nil {
		return err
	}
	caDir := filepath.Join(rootfs, hostCADir)
	if err := os.MkdirAll(caDir, 0o755); err != nil {
		return err
	}
	for _, p := range cas {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(caDir, filepath.Base(p)), data, 0o644); err != nil {
			return err
		}
	}
	if _, err := run(ctx, "", nil, "chroot", rootfs, "/usr/sbin/update-ca-certificates"); err != nil {
		return err
	}
	sources := fmt.Sprintf(`Types: deb
URIs: %s
Suites: bookworm bookworm-updates
Components: main
Signed-By: %s

Types: deb
URIs: %s
Suites: bookworm-security
Components: main
Signed-By: %s
`, mirror, debianKeyring, security, debianKeyring)
	if err := os.WriteFile(filepath.Join(rootfs, "etc/apt/sources.list.d/debian.sources"), []byte(sources), 0o644); err != nil {
		return err
	}
	// As in the published image (debuerreotype's minimizing config): dpkg
	// skips its fsync per unpacked file, a fifth of a big install's time
	// here. Its other docker-* files are left out: docker-clean would empty
	// the apt cache mounts the steps share.
	if err := os.WriteFile(filepath.Join(rootfs, DpkgSpeedup), []byte("force-unsafe-io\n"), 0o644); err != nil {
		return err
	}
	// Like the published image: no apt lists, caches, logs or host identity.
	for _, pat := range []string{
		"etc/apt/sources.list", "etc/resolv.conf", "etc/hostname",
		"var/lib/apt/lists/*_*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
		"var/log/*.log", "var/log/apt/*", "var/cache/debconf/*-old", "var/lib/dpkg/*-old",
	} {
		matches, _ := filepath.Glob(filepath.Join(rootfs, pat))
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	layerPath := filepath.Join(work, "layer.tar.gz")
	if err := writeGzipFile(layerPath, func(w io.Writer) error { return writeRootfsTar(rootfs, w) }); err != nil {
		return err
	}
	layer, err := tarball.LayerFromFile(layerPath)
	if err != nil {
		return err
	}
	img, err := newImage(v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Config{
		Env: []string{stdPath},
		Cmd: []string{"bash"},
	}, layer)
	if err != nil {
		return err
	}
	return writeLayout(out, img)
}

// newImage is an image of layers with the given platform and runtime config.
func newImage(p v1.Platform, cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Architecture: p.Architecture,
		Variant:      p.Variant,
		OS:           p.OS,
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
	})
	if err != nil {
		return nil, err
	}
	return appendLayers(img, layers...)
}

func appendLayers(img v1.Image, layers ...v1.Layer) (v1.Image, error) {
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "ov testenv"}}
	}
	return mutate.Append(img, adds...)
}

// writeLayout stores one image as an OCI layout.
func writeLayout(dir string, img v1.Image) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img)
}

// buildUserBase adds user ubuntu (1000:1000, /home/ubuntu) on top of the
// Debian base: passwd/group/shadow/gshadow entries and a home from /etc/skel.
func buildUserBase(debDir, out string) error {
	idx, err := layout.ImageIndexFromPath(debDir)
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	base, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		return err
	}
	lines := map[string]string{
		"etc/passwd":  "ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n",
		"etc/group":   "ubuntu:x:1000:\n",
		"etc/shadow":  "ubuntu:!:20089:0:99999:7:::\n",
		"etc/gshadow": "ubuntu:!::\n",
	}
	var entries []tarEntry
	home := tar.Header{Typeflag: tar.TypeDir, Name: "home/ubuntu/", Mode: 0o750, Uid: 1000, Gid: 1000}
	entries = append(entries, tarEntry{hdr: home})
	err = eachFile(base, func(h *tar.Header, r io.Reader) error {
		name := strings.TrimPrefix(h.Name, "./")
		if add, ok := lines[name]; ok {
			body, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			if len(body) > 0 && body[len(body)-1] != '\n' {
				body = append(body, '\n')
			}
			entries = append(entries, tarEntry{hdr: *h, body: append(body, add...)})
			delete(lines, name)
		}
		if rest, ok := strings.CutPrefix(name, "etc/skel/"); ok && rest != "" && h.Typeflag == tar.TypeReg {
			body, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			hh := *h
			hh.Name, hh.Uid, hh.Gid = "home/ubuntu/"+rest, 1000, 1000
			entries = append(entries, tarEntry{hdr: hh, body: body})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(lines) > 0 {
		return fmt.Errorf("debian base lacks %v", keys(lines))
	}
	layer, err := memLayer(entries)
	if err != nil {
		return err
	}
	img, err := appendLayers(base, layer)
	if err != nil {
		return err
	}
	return writeLayout(out, img)
}

// memLayer turns synthesized entries into a layer.
func memLayer(entries []tarEntry) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeEntries(pw, entries)) }()
		return pr, nil
	})
}

// eachFile calls fn for every regular file and symlink in the image's layers,
// bottom-up (enough for reading single-layer bases).
func eachFile(img v1.Image, fn func(*tar.Header, io.Reader) error) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		if err := tarwalk.Layer(l, fn); err != nil {
			return err
		}
	}
	return nil
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// buildBusybox makes a linux/amd64 + linux/arm64 index from Debian's
// busybox-static packages, downloaded with a private apt state so the host's
// dpkg architectures and lists stay untouched.
func buildBusybox(ctx context.Context, work, out, mirror, security string) error {
	os.Stderr.WriteString("testenv: downloading busybox-static for amd64 and arm64 (cold cache)\n")
	debs, err := aptDownload(ctx, work, mirror, security, "busybox-static", "amd64", "arm64")
	if err != nil {
		return err
	}
	bins := map[string]string{}
	for arch, deb := range debs {
		bin := filepath.Join(work, "busybox-"+arch)
		if err := extractFromDeb(ctx, deb, "./bin/busybox", bin); err != nil {
			return err
		}
		bins[arch] = bin
	}
	// The applet list is the same build config on both arches; ask the native one.
	list, err := run(ctx, "", nil, bins["amd64"], "--list-full")
	if err != nil {
		return err
	}
	var applets []string
	sc := bufio.NewScanner(strings.NewReader(string(list)))
	for sc.Scan() {
		if a := strings.TrimSpace(sc.Text()); a != "" && a != "bin/busybox" {
			applets = append(applets, a)
		}
	}
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		body, err := os.ReadFile(bins[p.Architecture])
		if err != nil {
			return err
		}
		layer, err := memLayer(busyboxEntries(body, applets))
		if err != nil {
			return err
		}
		img, err := newImage(p, v1.Config{Env: []string{stdPath}, Cmd: []string{"sh"}}, layer)
		if err != nil {
			return err
		}
		pp := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pp}})
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendIndex(idx)
}

// busyboxEntries is the busybox rootfs: the binary, `busybox --install -s`
// symlinks, and the few files a shell image needs.
func busyboxEntries(bin []byte, applets []string) []tarEntry {
	dir := func(name string, mode int64) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}}
	}
	file := func(name string, mode int64, body string) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, body: []byte(body)}
	}
	entries := []tarEntry{
		dir("bin", 0o755), dir("dev", 0o755), dir("etc", 0o755), dir("home", 0o755),
		dir("proc", 0o555), dir("root", 0o700), dir("sbin", 0o755), dir("sys", 0o555),
		dir("tmp", 0o1777), dir("usr", 0o755), dir("usr/bin", 0o755), dir("usr/sbin", 0o755),
		dir("var", 0o755), dir("var/tmp", 0o1777),
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755}, body: bin},
		file("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"),
		file("etc/group", 0o644, "root:x:0:\nnogroup:x:65534:\n"),
		// busybox-static has no getent/groupadd/useradd, which the bootstrap's
		// user step calls (as on real distribution bases): test doubles.
		file("usr/bin/getent", 0o755, shimGetent),
		file("usr/sbin/groupadd", 0o755, shimGroupadd),
		file("usr/sbin/useradd", 0o755, shimUseradd),
	}
	for _, a := range applets {
		entries = append(entries, tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: a, Linkname: "/bin/busybox", Mode: 0o777}})
	}
	return entries
}

const shimGetent = `#!/bin/sh
# test double for getent passwd|group NAME-OR-ID
case "$1" in passwd|group) ;; *) exit 2 ;; esac
awk -F: -v k="$2" '$1 == k || $3 == k { print; found = 1 } END { exit !found }' "/etc/$1"
`

const shimGroupadd = `#!/bin/sh
# test double for groupadd -g GID NAME
gid=
while [ $# -gt 1 ]; do case "$1" in -g) gid=$2; shift 2 ;; *) shift ;; esac; done
echo "$1:x:$gid:" >> /etc/group
`

const shimUseradd = `#!/bin/sh
# test double for useradd [-m] -u UID -g GID [-s SHELL] [-d HOME] NAME
uid=; gid=; shell=/bin/sh; home=; mk=
while [ $# -gt 1 ]; do
  case "$1" in
    -u) uid=$2; shift 2 ;; -g) gid=$2; shift 2 ;; -s) shell=$2; shift 2 ;;
    -d) home=$2; shift 2 ;; -m) mk=1; shift ;; *) shift ;;
  esac
done
home=${home:-/home/$1}
echo "$1:x:$uid:$gid::$home:$shell" >> /etc/passwd
if [ -n "$mk" ]; then mkdir -p "$home" && chown "$uid:$gid" "$home"; fi
`

// aptDownload fetches one package for each arch with apt-get download, using
// a private sources list and state under work. It returns arch -> .deb path.
func aptDownload(ctx context.Context, work, mirror, security, pkg string, arches ...string) (map[string]string, error) {
	state := filepath.Join(work, "apt")
	for _, d := range []string{"lists/partial", "cache/archives/partial", "debs"} {
		if err := os.MkdirAll(filepath.Join(state, d), 0o755); err != nil {
			return nil, err
		}
	}
	archList := strings.Join(arches, ",")
	sources := fmt.Sprintf("deb [arch=%s signed-by=%s] %s bookworm main\ndeb [arch=%s signed-by=%s] %s bookworm-security main\n",
		archList, debianKeyring, mirror, archList, debianKeyring, security)
	if err := os.WriteFile(filepath.Join(state, "sources.list"), []byte(sources), 0o644); err != nil {
		return nil, err
	}
	opts := []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(state, "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(state, "none"),
		"-o", "Dir::Etc::PreferencesParts=" + filepath.Join(state, "none"),
		"-o", "Dir::State::Lists=" + filepath.Join(state, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(state, "cache"),
		"-o", "APT::Architecture=amd64",
		"-o", "Acquire::Languages=none",
		"-o", "APT::Sandbox::User=root",
	}
	for _, a := range arches {
		opts = append(opts, "-o", "APT::Architectures::="+a)
	}
	if _, err := run(ctx, "", nil, "apt-get", append(opts, "update")...); err != nil {
		return nil, err
	}
	args := append(opts, "download")
	for _, a := range arches {
		args = append(args, pkg+":"+a)
	}
	debDir := filepath.Join(state, "debs")
	if _, err := run(ctx, debDir, nil, "apt-get", args...); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, a := range arches {
		m, _ := filepath.Glob(filepath.Join(debDir, pkg+"_*_"+a+".deb"))
		if len(m) != 1 {
			return nil, fmt.Errorf("apt-get download %s:%s: got %v", pkg, a, m)
		}
		out[a] = m[0]
	}
	return out, nil
}

// extractFromDeb copies one file out of a .deb's data archive.
func extractFromDeb(ctx context.Context, deb, member, dst string) error {
	dir := dst + ".x"
	if _, err := run(ctx, "", nil, "dpkg-deb", "-x", deb, dir); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	return os.Rename(filepath.Join(dir, member), dst)
}
