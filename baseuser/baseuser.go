// Package baseuser resolves the account an image's user steps run as from its
// external base image: the /etc/passwd entry at the configured UID decides the
// name, home and primary GID. Results are cached on disk per base digest, so a
// repeated generate costs one HEAD request per base.
package baseuser

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/overthink/ov/spec"
)

// MirrorsEnv names the environment variable holding registry mirrors, as
// comma-separated host=mirror pairs ("docker.io=127.0.0.1:5000").
const MirrorsEnv = "OV_REGISTRY_MIRRORS"

// Options tune Lookup. The zero value is ready to use.
type Options struct {
	// Mirrors maps a registry host to a mirror host that is tried first, the
	// way buildkitd's registry mirrors work ("docker.io": "127.0.0.1:5000").
	// Entries override those from OV_REGISTRY_MIRRORS.
	Mirrors map[string]string
	// CacheDir holds cached results; default os.UserCacheDir()/ov/users.
	// "-" disables the cache.
	CacheDir string
	// Keychain authenticates to registries; default authn.DefaultKeychain
	// (the docker config).
	Keychain authn.Keychain
	// Platform picks the image of a multi-platform base; default the host
	// platform, falling back to the index's first image.
	Platform *v1.Platform
	// Transport overrides the HTTP transport (tests).
	Transport http.RoundTripper
}

// Resolver adapts Lookup to the plan package's user lookup.
func Resolver(opts Options) func(ctx context.Context, ref string, want spec.User) (spec.User, error) {
	return func(ctx context.Context, ref string, want spec.User) (spec.User, error) {
		return Lookup(ctx, ref, want, opts)
	}
}

// Offline is a lookup that never contacts a registry: every base gets
// want.WithDefaultHome().
func Offline(_ context.Context, _ string, want spec.User) (spec.User, error) {
	return want.WithDefaultHome(), nil
}

// UnreachableError says a base image could not be inspected.
type UnreachableError struct {
	Base string
	Want spec.User
	Err  error
}

func (e *UnreachableError) Error() string {
	d := e.Want.WithDefaultHome()
	return fmt.Sprintf("base %q: cannot inspect its /etc/passwd: %v\n"+
		"  to proceed without the registry, run with --offline-user (or OV_OFFLINE=1): "+
		"the image then uses the configured user %q (uid %d, gid %d, home %s)",
		e.Base, e.Err, d.Name, d.UID, d.GID, d.Home)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// entry is what the cache stores: the passwd entry at a UID, if any.
type entry struct {
	Ref   string `json:"ref"`
	Found bool   `json:"found"`
	Name  string `json:"name,omitempty"`
	GID   int    `json:"gid,omitempty"`
	Home  string `json:"home,omitempty"`
}

func (e entry) user(want spec.User) spec.User {
	if !e.Found {
		return want.WithDefaultHome()
	}
	return spec.User{Name: e.Name, UID: want.UID, GID: e.GID, Home: e.Home}
}

// Lookup finds want.UID in the /etc/passwd of base image ref and returns that
// account (name, home and GID from the base). When the base has no such
// account it returns want.WithDefaultHome(): the configured account, which
// the bootstrap creates.
func Lookup(ctx context.Context, ref string, want spec.User, opts Options) (spec.User, error) {
	refs, err := candidates(ref, opts)
	if err != nil {
		return spec.User{}, fmt.Errorf("base %q: %w", ref, err)
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(keychain(opts)),
	}
	if opts.Transport != nil {
		ropts = append(ropts, remote.WithTransport(opts.Transport))
	}

	// The first candidate that answers a HEAD is the one we read; a mirror
	// that fails falls through to the origin, like buildkitd.
	var (
		desc *v1.Descriptor
		use  name.Reference
		errs []error
	)
	for _, r := range refs {
		d, err := remote.Head(r, ropts...)
		if err == nil {
			desc, use = d, r
			break
		}
		errs = append(errs, fmt.Errorf("%s: %w", r, err))
	}
	if desc == nil {
		return spec.User{}, &UnreachableError{Base: ref, Want: want, Err: errors.Join(errs...)}
	}

	cache := cacheFile(opts, desc.Digest, want.UID)
	if e, ok := readCache(cache); ok {
		return e.user(want), nil
	}

	img, err := pickImage(use, desc.Digest, opts, ropts)
	if err != nil {
		return spec.User{}, &UnreachableError{Base: ref, Want: want, Err: err}
	}
	layers, err := img.Layers()
	if err != nil {
		return spec.User{}, &UnreachableError{Base: ref, Want: want, Err: err}
	}
	passwd, err := ReadFile(layers, "/etc/passwd")
	if err != nil {
		return spec.User{}, fmt.Errorf("base %q: reading /etc/passwd: %w", ref, err)
	}
	e := entry{Ref: ref}
	if passwd != nil {
		e = findUID(passwd, want.UID)
		e.Ref = ref
	}
	writeCache(cache, e)
	return e.user(want), nil
}

func keychain(opts Options) authn.Keychain {
	if opts.Keychain != nil {
		return opts.Keychain
	}
	return authn.DefaultKeychain
}

// Candidates lists the references a lookup of ref tries, in order: its
// mirror (opts.Mirrors over OV_REGISTRY_MIRRORS), then ref itself. Loopback
// registries are spoken to over plain HTTP.
func Candidates(ref string, opts Options) ([]name.Reference, error) { return candidates(ref, opts) }

// candidates lists the references to try for ref: mirrors first, then ref.
func candidates(ref string, opts Options) ([]name.Reference, error) {
	r, err := parse(ref)
	if err != nil {
		return nil, err
	}
	mirrors, err := MirrorsFromEnv()
	if err != nil {
		return nil, err
	}
	for k, v := range opts.Mirrors {
		mirrors[canonicalHost(k)] = v
	}
	var out []name.Reference
	if m, ok := mirrors[r.Context().RegistryStr()]; ok {
		s := m + "/" + r.Context().RepositoryStr()
		if d, ok := r.(name.Digest); ok {
			s += "@" + d.DigestStr()
		} else {
			s += ":" + r.Identifier()
		}
		mr, err := parse(s)
		if err != nil {
			return nil, fmt.Errorf("mirror %q: %w", m, err)
		}
		out = append(out, mr)
	}
	return append(out, r), nil
}

// parse parses a reference, speaking plain HTTP to loopback registries.
func parse(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if isLoopback(r.Context().RegistryStr()) {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

func isLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func canonicalHost(h string) string {
	switch h {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		return name.DefaultRegistry
	}
	return h
}

// MirrorsFromEnv parses OV_REGISTRY_MIRRORS ("docker.io=127.0.0.1:5000,...").
func MirrorsFromEnv() (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(os.Getenv(MirrorsEnv), ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%s: %q is not host=mirror", MirrorsEnv, kv)
		}
		m[canonicalHost(k)] = v
	}
	return m, nil
}

// pickImage returns the image at digest d of repository r: for an index, the
// image for the wanted platform, else the index's first image.
func pickImage(r name.Reference, d v1.Hash, opts Options, ropts []remote.Option) (v1.Image, error) {
	dr := r.Context().Digest(d.String())
	desc, err := remote.Get(dr, ropts...)
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		return desc.Image()
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	want := opts.Platform
	if want == nil {
		want = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	var first *v1.Descriptor
	for i := range im.Manifests {
		m := &im.Manifests[i]
		if !m.MediaType.IsImage() || (m.Platform != nil && m.Platform.OS == "unknown") {
			continue // attestation manifests
		}
		if first == nil {
			first = m
		}
		if m.Platform != nil && m.Platform.Satisfies(*want) {
			return idx.Image(m.Digest)
		}
	}
	if first == nil {
		return nil, fmt.Errorf("index %s has no images", d)
	}
	return idx.Image(first.Digest)
}

// findUID returns the passwd entry for uid (the first one, as getent does).
func findUID(passwd []byte, uid int) entry {
	sc := bufio.NewScanner(bytes.NewReader(passwd))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || strings.HasPrefix(f[0], "#") {
			continue
		}
		u, err1 := strconv.Atoi(f[2])
		g, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || u != uid {
			continue
		}
		return entry{Found: true, Name: f[0], GID: g, Home: f[5]}
	}
	return entry{}
}

// MaxFileSize bounds a file ReadFile reads into memory: an /etc/passwd
// of thousands of accounts is well under it.
const MaxFileSize = 8 << 20

// ReadFile returns the content of file p in the filesystem the layers (bottom
// first, as v1.Image.Layers returns them) stack up to, or nil when it does not
// exist, and an error for a file larger than MaxFileSize. It searches from
// the top layer down, honouring whiteouts and opaque
// directories, and follows symlinks and hard links.
func ReadFile(layers []v1.Layer, p string) ([]byte, error) {
	return readFile(layers, len(layers)-1, p, 0)
}

func readFile(layers []v1.Layer, top int, p string, depth int) ([]byte, error) {
	if depth > 16 {
		return nil, fmt.Errorf("%s: too many links", p)
	}
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	for i := top; i >= 0; i-- {
		r, err := scanLayer(layers[i], p)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		switch {
		case r.data != nil:
			return r.data, nil
		case r.link != "":
			target := r.link
			if r.symlink && !path.IsAbs(target) {
				target = path.Join(path.Dir("/"+p), target)
			}
			from := len(layers) - 1
			if !r.symlink {
				from = i // a hard link's target is in the same layer
			}
			return readFile(layers, from, target, depth+1)
		case r.hidden:
			return nil, nil
		}
	}
	return nil, nil
}

type scanResult struct {
	data    []byte
	link    string
	symlink bool
	hidden  bool // deleted here, or lower layers are hidden from here
}

// scanLayer looks for p in one layer's tar stream.
func scanLayer(l v1.Layer, p string) (scanResult, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return scanResult{}, err
	}
	defer rc.Close()
	dir, base := path.Split(p)
	whiteout := dir + ".wh." + base
	var res scanResult
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return scanResult{}, err
		}
		n := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		switch {
		case n == p:
			switch h.Typeflag {
			case tar.TypeReg:
				if h.Size > MaxFileSize {
					return scanResult{}, fmt.Errorf("/%s is %d bytes, more than the %d MiB ov reads of a base image's file", p, h.Size, MaxFileSize>>20)
				}
				data, err := io.ReadAll(io.LimitReader(tr, MaxFileSize))
				if err != nil {
					return scanResult{}, err
				}
				if data == nil {
					data = []byte{}
				}
				return scanResult{data: data}, nil
			case tar.TypeSymlink:
				return scanResult{link: h.Linkname, symlink: true}, nil
			case tar.TypeLink:
				return scanResult{link: h.Linkname}, nil
			default:
				res.hidden = true // a directory or device: no file here or below
			}
		case n == whiteout:
			res.hidden = true
		case strings.HasPrefix(p, n+"/"):
			// An ancestor: an opaque marker inside it, or a non-directory
			// replacing it, hides the lower layers' copies.
			if h.Typeflag != tar.TypeDir {
				res.hidden = true
			}
		case path.Base(n) == ".wh..wh..opq" && strings.HasPrefix(p, path.Dir(n)+"/"):
			res.hidden = true
		case strings.HasPrefix(path.Base(n), ".wh.") && strings.HasPrefix(p, path.Join(path.Dir(n), strings.TrimPrefix(path.Base(n), ".wh."))+"/"):
			res.hidden = true // an ancestor directory was deleted
		}
	}
}

func cacheFile(opts Options, d v1.Hash, uid int) string {
	dir := opts.CacheDir
	if dir == "-" {
		return ""
	}
	if dir == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(c, "ov", "users")
	}
	return filepath.Join(dir, fmt.Sprintf("%s-%s-%d.json", d.Algorithm, d.Hex, uid))
}

func readCache(file string) (entry, bool) {
	if file == "" {
		return entry{}, false
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return entry{}, false
	}
	var e entry
	if json.Unmarshal(b, &e) != nil {
		return entry{}, false
	}
	return e, true
}

// writeCache stores e atomically; a cache that cannot be written only costs
// a re-read next time.
func writeCache(file string, e entry) {
	if file == "" {
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	if os.MkdirAll(filepath.Dir(file), 0o755) != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(file), ".tmp-*")
	if err != nil {
		return
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), file) != nil {
		os.Remove(f.Name())
	}
}
