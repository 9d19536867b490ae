package plan

import (
	"strings"

	"github.com/overthink/ov/spec"
)

// Cache mounts, with ids shared by every image (and by bake and ov build).
func rpmCache() []Mount {
	return []Mount{{Kind: Cache, Target: "/var/cache/libdnf5", ID: "ov-dnf", Sharing: "locked"}}
}

func debCache() []Mount {
	return []Mount{
		{Kind: Cache, Target: "/var/cache/apt", ID: "ov-apt-cache", Sharing: "locked"},
		{Kind: Cache, Target: "/var/lib/apt", ID: "ov-apt-lib", Sharing: "locked"},
	}
}

func pkgCache(pkg string) []Mount {
	if pkg == "deb" {
		return debCache()
	}
	return rpmCache()
}

// Leftovers of a package install that differ from run to run (logs with
// times, ldconfig's cache of file stamps, debconf's backup of its previous
// state): the install step removes them, so the same packages make the
// same layer. The package databases (/var/lib/dpkg, the rpmdb, dnf's
// history and system state) stay: dpkg, rpm and dnf need them.
var (
	debLeftovers = []string{"/var/log/dpkg.log", "/var/log/alternatives.log", "/var/log/apt/history.log",
		"/var/log/apt/term.log", "/var/log/apt/eipp.log.xz", "/var/cache/ldconfig/aux-cache", "/var/cache/debconf/*-old"}
	rpmLeftovers = []string{"/var/log/dnf5.log*", "/var/log/dnf.log*", "/var/log/dnf.librepo.log*",
		"/var/log/dnf.rpm.log*", "/var/log/hawkey.log*", "/var/cache/ldconfig/aux-cache"}
)

// removeLeftovers is the command removing paths (globs unquoted).
func removeLeftovers(paths []string) string { return "rm -f " + strings.Join(paths, " ") }

// aptInstall installs the (quoted) packages and removes the leftovers.
func aptInstall(pkgs string) string {
	return "apt-get update && apt-get install -y --no-install-recommends " + pkgs + " && " + removeLeftovers(debLeftovers)
}

// packageStep installs the layer's system packages for pkg.
func packageStep(pkg string, l *spec.Layer) (Step, bool, error) {
	pkgs := l.Packages(pkg)
	if len(pkgs) == 0 {
		return Step{}, false, nil
	}
	for _, p := range pkgs {
		if err := checkWord("package", p); err != nil {
			return Step{}, false, err
		}
	}
	if pkg == "deb" {
		return Step{Kind: Run, User: "root", Mounts: debCache(), Desc: "deb packages",
			Shell: aptInstall(QuoteAll(pkgs))}, true, nil
	}
	r := l.Rpm
	var cmds []string
	for _, repo := range r.Repos {
		s, err := repoSetup(repo)
		if err != nil {
			return Step{}, false, err
		}
		cmds = append(cmds, s...)
	}
	for _, c := range r.Copr {
		if err := checkWord("copr", c); err != nil {
			return Step{}, false, err
		}
		cmds = append(cmds, "dnf5 copr enable -y "+Quote(c))
	}
	install := []string{"dnf", "install", "-y"}
	for _, o := range r.Options {
		if err := checkWord("option", o); err != nil {
			return Step{}, false, err
		}
		install = append(install, Quote(o))
	}
	for _, repo := range r.Repos {
		install = append(install, Quote("--enable-repo="+repo.Name))
	}
	for _, e := range r.Exclude {
		if err := checkWord("exclude", e); err != nil {
			return Step{}, false, err
		}
		install = append(install, Quote("--exclude="+e))
	}
	cmds = append(cmds, strings.Join(install, " ")+" "+QuoteAll(pkgs))
	for _, c := range r.Copr {
		cmds = append(cmds, "dnf5 copr disable -y "+Quote(c))
	}
	cmds = append(cmds, removeLeftovers(rpmLeftovers))
	return Step{Kind: Run, User: "root", Mounts: rpmCache(), Desc: "rpm packages",
		Shell: strings.Join(cmds, " && ")}, true, nil
}

// repoDirs are where dnf reads repository definitions from.
var repoDirs = []string{"/etc/yum.repos.d", "/etc/distro.repos.d"}

// repoSetup adds an rpm repository, disabled (the install enables it), and
// imports its key when one is given. Both are idempotent, as bases often
// carry the repository or key already: a repository id already defined
// is left as it is (dnf5 addrepo refuses an existing id), and a key rpm
// does not import (already there) is not an error here: were it missing,
// the install's signature check would fail.
func repoSetup(repo spec.Repo) ([]string, error) {
	if err := checkWord("repository name", repo.Name); err != nil {
		return nil, err
	}
	if err := checkWord("repository url", repo.URL); err != nil {
		return nil, err
	}
	var globs []string
	for _, d := range repoDirs {
		globs = append(globs, d+"/*.repo")
	}
	cmds := []string{"if grep -Fqsx " + Quote("["+repo.Name+"]") + " " + strings.Join(globs, " ") +
		"; then echo " + Quote("rpm repository "+repo.Name+" is already defined: kept as it is") + "; else " +
		"dnf5 config-manager addrepo --from-repofile=" + Quote(repo.URL) + " && " +
		"dnf5 config-manager setopt " + Quote(repo.Name+".enabled=0") + "; fi"}
	if repo.GPGKey != "" {
		if err := checkWord("gpgkey", repo.GPGKey); err != nil {
			return nil, err
		}
		cmds = append(cmds, "{ rpm --import "+Quote(repo.GPGKey)+" || echo "+
			Quote("gpgkey "+repo.GPGKey+" not imported (already there?): the install checks signatures")+" >&2; }")
	}
	return cmds, nil
}
