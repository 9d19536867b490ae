package plan

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/overthink/ov/spec"
)

var shaRE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func checkTaskSource(t TaskSource) error {
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		strings.ContainsFunc(t.URL, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '\'' || r == '"' || r == '\\' }) {
		return inputErr(spec.Pos{}, "task download location %q: want an http(s) URL of the directory holding task_linux_<arch>.tar.gz", t.URL)
	}
	for arch, sum := range t.SHA256 {
		if arch != "amd64" && arch != "arm64" {
			return inputErr(spec.Pos{}, "task sha256: unknown architecture %q (want amd64 or arm64)", arch)
		}
		if !shaRE.MatchString(sum) {
			return inputErr(spec.Pos{}, "task sha256 for %s: %q is not 64 hex digits", arch, sum)
		}
	}
	return nil
}

// ArchiveURL is the task archive for arch ("amd64", "arm64").
func (t TaskSource) ArchiveURL(arch string) string {
	return strings.TrimSuffix(t.URL, "/") + "/task_linux_" + arch + ".tar.gz"
}

// bootstrap makes an external base usable: download tools (deb), task, the
// user.
func bootstrap(pkg string, u spec.User, task TaskSource) []Step {
	var steps []Step
	if pkg == "deb" {
		steps = append(steps, Step{Kind: Run, User: "root", Mounts: debCache(),
			Shell: aptInstall("curl ca-certificates"),
			Desc:  "bootstrap: install curl and ca-certificates"})
	}
	steps = append(steps, Step{Kind: FetchTask, User: "root", Shell: unpackTask(task),
		Desc: "bootstrap: install task"})
	return append(steps, userStep(u))
}

// ArchCase maps `uname -m` to a go-task release architecture in $arch and
// fails on anything else.
const ArchCase = `case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; ` +
	`*) echo "unsupported architecture: $(uname -m)" >&2; exit 1 ;; esac`

// unpackTask checks (when pinned) and unpacks the task archive found at
// TaskArchive. Both back ends run it after putting the archive there.
func unpackTask(t TaskSource) string {
	// Minimal bases (busybox) have no /usr/local/bin; on bootc (ublue)
	// bases /usr/local is a link to ../var/usrlocal, which does not exist
	// yet: mkdir -p fails on the dangling link, so create its target.
	unpack := "if [ -L /usr/local ] && [ ! -e /usr/local ]; then (cd /usr && mkdir -p \"$(readlink local)\"); fi && " +
		"mkdir -p /usr/local/bin && tar -xzf " + TaskArchive + " -C /usr/local/bin --no-same-owner task"
	if len(t.SHA256) == 0 {
		return unpack
	}
	var cases []string
	for _, arch := range []string{"amd64", "arm64"} {
		if sum := t.SHA256[arch]; sum != "" {
			cases = append(cases, arch+") sum="+strings.ToLower(sum)+" ;;")
		}
	}
	return ArchCase + " && case $arch in " + strings.Join(cases, " ") +
		` *) echo "no sha256 pinned for task on $arch" >&2; exit 1 ;; esac && ` +
		`if [ "$(sha256sum ` + TaskArchive + ` | cut -d ' ' -f 1)" != "$sum" ]; then echo "task archive: sha256 mismatch" >&2; exit 1; fi && ` +
		unpack
}
