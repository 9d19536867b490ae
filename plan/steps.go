package plan

import (
	"path"
	"strconv"

	"github.com/overthink/ov/installfile"
	"github.com/overthink/ov/spec"
)

func npmCache(u spec.User) Mount {
	return Mount{Kind: Cache, Target: path.Join(u.Home, ".cache/npm"), ID: "ov-npm-" + strconv.Itoa(u.UID),
		Owned: true, UID: u.UID, GID: u.GID}
}

func cargoCache(u spec.User) Mount {
	return Mount{Kind: Cache, Target: path.Join(u.Home, ".cargo/registry"), ID: "ov-cargo-" + strconv.Itoa(u.UID),
		Owned: true, UID: u.UID, GID: u.GID}
}

func layerMount(layer string) Mount {
	return Mount{Kind: Bind, Target: LayerMount, From: layer, Source: "/"}
}

func pixiStage(layer string, f installfile.File, image, home, envDir string) PixiStage {
	ps := PixiStage{
		Layer: layer, Stage: layer + spec.PixiStageSuffix, Image: image, Manifest: f.Name,
		Workdir: home, EnvDir: envDir, Files: []string{f.Name}, Install: f.Kind.Shell(home, f),
	}
	if f.Kind.Setup != nil {
		ps.Setup = f.Kind.Setup(f)
	}
	if f.Lock != "" {
		ps.Files = append(ps.Files, f.Lock)
	}
	return ps
}

// layerSteps turns a layer's install files into steps.
type layerSteps struct {
	pkg  string
	user spec.User
	uid  string
}

func (ls *layerSteps) steps(l *spec.Layer) ([]Step, error) {
	var out []Step
	if s, ok, err := packageStep(ls.pkg, l); err != nil {
		return nil, err
	} else if ok {
		out = append(out, s)
	}
	for _, f := range l.Installs {
		if f.Kind.Stage {
			continue
		}
		// An install file adds files of the layer's own: see Step.Detach.
		s := Step{Kind: Run, User: ls.uid, Shell: f.Kind.Shell(LayerMount, f),
			Mounts: append([]Mount{layerMount(l.Name)}, ls.cache(f.Kind.Cache)...), Desc: f.Name, Detach: true}
		if f.Kind.Root {
			s.User = "root"
		}
		out = append(out, s)
	}
	for i := range out {
		out[i].Layer = l.Name
	}
	return out, nil
}

// cache returns the mounts of a kind's cache.
func (ls *layerSteps) cache(c installfile.Cache) []Mount {
	switch c {
	case installfile.PackageCache:
		return pkgCache(ls.pkg)
	case installfile.NpmCache:
		return []Mount{npmCache(ls.user)}
	case installfile.CargoCache:
		return []Mount{cargoCache(ls.user)}
	}
	return nil
}
