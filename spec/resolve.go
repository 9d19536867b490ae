package spec

import (
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
)

// first returns the image's setting, else the defaults', else the fallback.
func first[T any](image, defaults opt[T], fallback T) opt[T] {
	if image.set {
		return image
	}
	if defaults.set {
		return defaults
	}
	return opt[T]{v: fallback}
}

// resolver resolves images.yml against the layers.
type resolver struct {
	*loader
	raw       *rawImages
	byName    map[string]*rawImage
	names     []string // written order
	images    map[string]*Image
	installed map[string]map[string]bool // image -> layers installed by it and its chain
}

func (l *loader) resolve(raw *rawImages) *Project {
	r := &resolver{
		loader:    l,
		raw:       raw,
		byName:    map[string]*rawImage{},
		images:    map[string]*Image{},
		installed: map[string]map[string]bool{},
	}
	for _, ri := range raw.images {
		r.byName[ri.name] = ri
		r.names = append(r.names, ri.name)
	}
	// Resolve parents before children. A cycle is reported when every
	// image in it is enabled (otherwise the disabled-base error covers it)
	// and broken by resolving the closing image without its parent.
	state := map[string]int{}
	var stack []string
	var visit func(ri *rawImage)
	visit = func(ri *rawImage) {
		state[ri.name] = 1
		stack = append(stack, ri.name)
		var parent *Image
		base := first(ri.s.base, raw.defaults.base, DefaultBase)
		if pr := r.byName[base.v]; pr != nil {
			switch state[pr.name] {
			case 0:
				visit(pr)
				parent = r.images[pr.name]
			case 1:
				cycle := append(cutFrom(stack, pr.name), pr.name)
				if r.allEnabled(cycle) {
					l.errs.add(base.pos, "circular base images: %s", strings.Join(cycle, " -> "))
				}
			default:
				parent = r.images[pr.name]
			}
		}
		r.images[ri.name] = r.resolveImage(ri, parent)
		stack = stack[:len(stack)-1]
		state[ri.name] = 2
	}
	for _, ri := range raw.images {
		if state[ri.name] == 0 {
			visit(ri)
		}
	}

	p := &Project{Dir: l.dir, Images: r.images, Layers: l.layers, Names: r.names}
	added := map[string]bool{}
	var add func(img *Image)
	add = func(img *Image) {
		if added[img.Name] || !img.Enabled {
			return
		}
		added[img.Name] = true
		if pi := r.images[img.Parent]; pi != nil {
			add(pi)
		}
		p.Order = append(p.Order, img.Name)
	}
	for _, name := range r.names {
		add(r.images[name])
	}
	return p
}

func (r *resolver) enabled(ri *rawImage) bool {
	return first(ri.s.enabled, r.raw.defaults.enabled, true).v
}

func (r *resolver) allEnabled(names []string) bool {
	for _, n := range names {
		if !r.enabled(r.byName[n]) {
			return false
		}
	}
	return true
}

// resolveImage resolves one image's settings through image -> (parent for
// what the base image fixes) -> defaults -> fallback, then its layer order.
// Only enabled images report errors.
func (r *resolver) resolveImage(ri *rawImage, parent *Image) *Image {
	var errs *errList // nil discards
	if r.enabled(ri) {
		errs = &r.errs
	}
	s, d := ri.s, r.raw.defaults
	img := &Image{Name: ri.name, Pos: ri.pos, Enabled: r.enabled(ri)}

	base := first(s.base, d.base, DefaultBase)
	img.Base = base.v
	if pr := r.byName[base.v]; pr != nil {
		img.Parent = base.v
		if !r.enabled(pr) {
			errs.add(base.pos, "base image %q is disabled (enabled: false)", base.v)
		}
	} else if c := bareSuggest(base.v, r.names); c != "" {
		errs.add(base.pos, "base %q is not an image in images.yml (did you mean %q?); give external images a tag, like \"name:tag\"", clip(base.v), c)
	} else if err := checkBase(base.v); err != nil {
		errs.add(base.pos, "%v", err)
	}

	img.Bootc = first(s.bootc, d.bootc, false).v
	tag := first(s.tag, d.tag, DefaultTag)
	img.Tag = tag.v
	if err := CheckTag(tag.v); err != nil {
		errs.add(tag.pos, "%v", err)
	}
	reg := first(s.registry, d.registry, "")
	img.Registry = reg.v
	if reg.v != "" {
		if err := checkRegistry(reg.v); err != nil {
			errs.add(reg.pos, "%v", err)
		}
	}

	// What the base image fixes (package manager, user, platforms) comes
	// from the parent unless the image sets it.
	pkg := first(s.pkg, d.pkg, DefaultPkg)
	user := first(s.user, d.user, DefaultUser)
	uid := first(s.uid, d.uid, DefaultUID)
	gid := first(s.gid, d.gid, DefaultGID)
	if parent != nil {
		if !s.pkg.set {
			pkg = opt[string]{v: parent.Pkg}
		}
		if !s.user.set {
			user = opt[string]{v: parent.User}
		}
		if !s.uid.set {
			uid = opt[int]{v: parent.UID}
		}
		if !s.gid.set {
			gid = opt[int]{v: parent.GID}
		}
	}
	img.Pkg, img.User, img.UID, img.GID = pkg.v, user.v, uid.v, gid.v
	// Values taken from the parent were checked there (they have no pos).
	if err := checkPkg(pkg.v); err != nil && pkg.pos.File != "" {
		errs.add(pkg.pos, "%v", err)
	} else if err == nil && parent != nil && pkg.v != parent.Pkg && checkPkg(parent.Pkg) == nil {
		errs.add(pkg.pos, "pkg %q differs from base image %q (pkg %q)", pkg.v, parent.Name, parent.Pkg)
	}
	if err := checkUser(user.v); err != nil && user.pos.File != "" {
		errs.add(user.pos, "%v", err)
	}
	if err := checkID("uid", uid.v); err != nil && uid.pos.File != "" {
		errs.add(uid.pos, "%v", err)
	}
	if err := checkID("gid", gid.v); err != nil && gid.pos.File != "" {
		errs.add(gid.pos, "%v", err)
	}

	img.Platforms = r.platforms(ri, parent, errs)

	ports := first(s.ports, d.ports, nil)
	hostPorts := map[string]int{} // host port -> line
	for _, it := range ports.v {
		pos := Pos{File: "images.yml", Line: it.line}
		if err := checkPortMapping(it.v); err != nil {
			errs.add(pos, "ports: %v", err)
			continue
		}
		host, _, _ := strings.Cut(it.v, ":")
		if first, dup := hostPorts[host]; dup {
			errs.add(pos, "ports: host port %s is published twice (first at line %d)", host, first)
			continue
		}
		hostPorts[host] = it.line
		img.Ports = append(img.Ports, it.v)
	}

	if s.merge.set || d.merge.set {
		maxMB := first(s.mergeMaxMB, d.mergeMaxMB, DefaultMaxMB)
		img.Merge = &Merge{Auto: first(s.mergeAuto, d.mergeAuto, false).v, MaxMB: maxMB.v}
		if maxMB.v <= 0 {
			errs.add(maxMB.pos, "merge.max_mb must be greater than 0, got %d", maxMB.v)
		}
	}

	r.layerOrder(img, ri, parent, errs)
	r.checkRouteHosts(img, errs)
	if parent != nil && slices.Contains(img.Install, parent.Name) && bareRef(parent) {
		errs.add(base.pos, "base image %q has the name of layer %q, which this image installs: docker buildx bake would put the image in place of the layer's build stage (rename one of them, or give the base image a registry)", parent.Name, parent.Name)
	}
	return img
}

// checkRouteHosts refuses two routes of an image's chain for one host:
// traefik matches hosts without regard to case, so "App.localhost" and
// "app.localhost" are the same.
func (r *resolver) checkRouteHosts(img *Image, errs *errList) {
	seen := map[string]string{} // lowercased host -> layer
	seenImg := map[string]bool{}
	for c := img; c != nil && !seenImg[c.Name]; c = r.images[c.Parent] {
		seenImg[c.Name] = true
		for _, ln := range c.Install {
			l := r.layers[ln]
			if l == nil || l.Route == nil {
				continue
			}
			h := strings.ToLower(l.Route.Host)
			if other, dup := seen[h]; dup && other != ln {
				errs.add(l.Pos, "route: host %q is also the host of layer %q in image %q (hosts match without regard to case)", l.Route.Host, other, img.Name)
				continue
			}
			seen[h] = ln
		}
	}
}

// bareRef reports whether img's reference is a bare name in its familiar
// form (no registry, or Docker Hub's library): bake's named context for it
// is then a plain word, the kind of name a Containerfile stage has.
func bareRef(img *Image) bool {
	named, err := reference.ParseNormalizedNamed(img.Ref())
	return err == nil && !strings.Contains(reference.FamiliarName(named), "/")
}

// platforms resolves an image's platforms: its own, else its parent's,
// else defaults', else the fallback; a child's own must be a subset of its
// parent's.
func (r *resolver) platforms(ri *rawImage, parent *Image, errs *errList) []string {
	var o opt[[]item[string]]
	switch {
	case ri.s.platforms.set:
		o = ri.s.platforms
	case parent != nil:
		return slices.Clone(parent.Platforms)
	case r.raw.defaults.platforms.set:
		o = r.raw.defaults.platforms
	default:
		return slices.Clone(DefaultPlatforms)
	}
	if len(o.v) == 0 {
		errs.add(o.pos, "platforms must not be empty")
		return nil
	}
	var out []string
	for _, it := range o.v {
		pos := Pos{File: "images.yml", Line: it.line}
		p, err := normalizePlatform(it.v)
		if err != nil {
			errs.add(pos, "%v", err)
			continue
		}
		written := it.v
		if written != p {
			written = fmt.Sprintf("%s (%s)", it.v, p)
		}
		if slices.Contains(out, p) {
			errs.add(pos, "platform %s is listed twice", written)
			continue
		}
		if parent != nil && ri.s.platforms.set && !slices.Contains(parent.Platforms, p) {
			errs.add(pos, "platform %s is not built for base image %q (%s)", written, parent.Name, strings.Join(parent.Platforms, ", "))
			continue
		}
		out = append(out, p)
	}
	return out
}

// layerOrder sets img.Layers and img.Install: for each written layer in
// order, its dependencies first (in depends order), then the layer, skipping
// layers the base chain already installs.
func (r *resolver) layerOrder(img *Image, ri *rawImage, parent *Image, errs *errList) {
	inherited := map[string]bool{}
	if parent != nil {
		inherited = r.installed[parent.Name]
	}
	seen := map[string]bool{}
	state := map[string]int{}
	var visit func(name string)
	visit = func(name string) {
		layer := r.layers[name]
		if layer == nil || inherited[name] || state[name] != 0 {
			return // unknown and circular dependencies are reported once, globally
		}
		state[name] = 1
		for _, dep := range layer.Depends {
			visit(dep)
		}
		state[name] = 2
		img.Install = append(img.Install, name)
	}
	if ri.layers.set && len(ri.layers.v) == 0 {
		errs.add(ri.layers.pos, "image %q: layers must not be empty", img.Name)
	}
	for _, it := range ri.layers.v {
		pos := Pos{File: "images.yml", Line: it.line}
		if seen[it.v] {
			errs.add(pos, "image %q: layer %q is listed twice", img.Name, clip(it.v))
			continue
		}
		seen[it.v] = true
		img.Layers = append(img.Layers, it.v)
		if r.layers[it.v] == nil {
			errs.add(pos, "image %q: unknown layer %q%s", img.Name, clip(it.v), didYouMean(it.v, sortedKeys(r.layers)))
			continue
		}
		visit(it.v)
	}

	all := make(map[string]bool, len(inherited)+len(img.Install))
	for name := range inherited {
		all[name] = true
	}
	for _, name := range img.Install {
		all[name] = true
	}
	r.installed[img.Name] = all

	for _, name := range img.Install {
		if r.layers[name].Route != nil && !all["traefik"] {
			errs.add(img.Pos, "image %q: layer %q has a route, which needs the traefik layer in the image or its base images", img.Name, name)
		}
	}
}

// bareSuggest suggests an image name for a base without registry, tag or
// digest that is close to one: most likely a typo, not an external image.
func bareSuggest(base string, names []string) string {
	if strings.ContainsAny(base, "/:@") {
		return ""
	}
	return suggest(base, names)
}
