package plan

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/overthink/ov/spec"
)

// RoutesPath is where image's traefik routes (Image.Routes) are written,
// relative to the project; the file's header names it.
func RoutesPath(image string) string { return ".build/" + image + "/traefik-routes.yml" }

// FragmentsDir holds image's supervisord fragments (Image.Fragments),
// relative to the project; each fragment's header names its path.
func FragmentsDir(image string) string { return ".build/" + image + "/fragments" }

// TraefikEntryPoint is the entry point of the traefik layer's static
// config (layers/traefik/traefik.yml) that routes are bound to.
const TraefikEntryPoint = "web"

// HeaderFile is the project file whose content leads the supervisord config.
const HeaderFile = spec.HeaderFile

// services adds the supervisord fragments and the assembly step when any
// layer of the chain has a service.
func (b *builder) services(pl *Image, img *spec.Image, chain []*spec.Layer) error {
	width := max(2, len(strconv.Itoa(len(chain))))
	var frags []File
	for i, l := range chain {
		if l.Service == "" {
			continue
		}
		text, err := fragment(l)
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%0*d-%s.conf", width, i+1, l.Name)
		frags = append(frags, File{Name: name, Content: withHeader(FragmentsDir(img.Name)+"/"+name, "; ", text)})
	}
	if len(frags) == 0 {
		return nil
	}
	header, err := spec.ReadProjectFile(b.p.Dir, HeaderFile)
	if errors.Is(err, fs.ErrNotExist) {
		header = []byte(defaultHeader)
	} else if err != nil {
		return fmt.Errorf("supervisord header: %w", err)
	}
	name := strings.Repeat("0", width) + "-header.conf"
	pl.Fragments = append([]File{{Name: name, Content: withHeader(FragmentsDir(img.Name)+"/"+name, "; ", ensureNewline(string(header)))}}, frags...)
	pl.Steps = append(pl.Steps, Step{Kind: Run, User: "root",
		Shell:  "cat " + FragmentsMount + "/*.conf > /etc/supervisord.conf",
		Mounts: []Mount{{Kind: Bind, Target: FragmentsMount, From: StageSupervisord, Source: FragmentsMount}},
		Desc:   "assemble /etc/supervisord.conf"})
	return nil
}

const defaultHeader = `[supervisord]
nodaemon=true
logfile=/dev/null
logfile_maxbytes=0
pidfile=/tmp/supervisord.pid
`

// fragment checks a layer's service text (spec.CheckService) and returns
// it as a fragment.
func fragment(l *spec.Layer) (string, error) {
	if err := spec.CheckService(l.Name, l.Service); err != nil {
		return "", inputErr(spec.Pos{File: l.Pos.File}, "%v", err)
	}
	return ensureNewline(l.Service), nil
}

func ensureNewline(s string) string {
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

// withHeader prefixes content with the generated-file header as a comment.
func withHeader(path, comment, content string) []byte {
	return []byte(comment + path + " (generated -- do not edit)\n" + content)
}

// routes adds the traefik routes file and its COPY when any layer of the
// chain has a route.
func routes(pl *Image, img *spec.Image, chain []*spec.Layer) error {
	type server struct {
		URL string `yaml:"url"`
	}
	type service struct {
		LoadBalancer struct {
			Servers []server `yaml:"servers"`
		} `yaml:"loadBalancer"`
	}
	// A router without entryPoints listens on every entry point, the
	// dashboard's too: bind each to web.
	type router struct {
		EntryPoints []string `yaml:"entryPoints"`
		Rule        string   `yaml:"rule"`
		Service     string   `yaml:"service"`
	}
	routers, services := map[string]router{}, map[string]service{}
	for _, l := range chain {
		if l.Route == nil {
			continue
		}
		if err := spec.CheckHost(l.Route.Host); err != nil {
			return inputErr(spec.Pos{File: l.Pos.File}, "%v", err)
		}
		if err := spec.CheckPort(l.Route.Port); err != nil {
			return inputErr(spec.Pos{File: l.Pos.File}, "route: %v", err)
		}
		routers[l.Name] = router{EntryPoints: []string{TraefikEntryPoint}, Rule: "Host(`" + l.Route.Host + "`)", Service: l.Name}
		var s service
		s.LoadBalancer.Servers = []server{{URL: "http://127.0.0.1:" + strconv.Itoa(l.Route.Port)}}
		services[l.Name] = s
	}
	if len(routers) == 0 {
		return nil
	}
	doc := map[string]any{"http": map[string]any{"routers": routers, "services": services}}
	var y strings.Builder
	enc := yaml.NewEncoder(&y)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	pl.Routes = withHeader(RoutesPath(img.Name), "# ", y.String())
	pl.Steps = append(pl.Steps, Step{Kind: Copy, From: StageTraefik, Src: "/routes.yml", Dst: RoutesFile,
		Desc: "COPY traefik routes"})
	return nil
}
