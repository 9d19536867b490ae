package spec

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/platforms"
	"github.com/distribution/reference"
)

// Value checks. They reject, with a message, anything that is not plainly a
// valid value, so that names and values can be used as path components and
// tokens in generated files. The emitters still escape everything.
var (
	nameRE    = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	envKeyRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	pkgRE     = regexp.MustCompile(`^[A-Za-z0-9_@/][A-Za-z0-9_.+:@~=/()*-]*$`)
	globRE    = regexp.MustCompile(`^[A-Za-z0-9_@/*?\[][A-Za-z0-9_.+:@~=/()*?\[\]-]*$`)
	optionRE  = regexp.MustCompile(`^--?[A-Za-z0-9][A-Za-z0-9_.=:,/+*-]*$`)
	coprRE    = regexp.MustCompile(`^@?[A-Za-z0-9][A-Za-z0-9_.+-]*/[A-Za-z0-9][A-Za-z0-9_.+-]*$`)
	repoRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)
	urlRE     = regexp.MustCompile(`^[A-Za-z0-9._~:/?#@!&+,;=%-]+$`)
	tagRE     = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	userRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	dnsRE     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	knownArch = []string{"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64"}
)

// ValidName reports whether s is a valid layer or image name: lowercase
// letters and digits in hyphen-separated words ("my-layer").
func ValidName(s string) bool { return nameRE.MatchString(s) }

// MaxNameLen bounds image and layer names, which become directory and
// file names, Containerfile stage names, container and unit names: the
// longest tag a registry accepts (the OCI distribution spec's 128).
const MaxNameLen = 128

// ReservedImageNames are directories of ov's own under .build/, beside one
// per image: an image of that name would share (and prune) them.
var ReservedImageNames = []string{"oci", "state"}

// fixedStages are the stage names a generated Containerfile uses besides
// layer contexts; "<layer>-pixi-build" stages are reserved by suffix.
var fixedStages = []string{"scratch", "context", "supervisord-conf", "traefik-routes"}

// PixiStageSuffix ends the name of a layer's pixi build stage.
const PixiStageSuffix = "-pixi-build"

// ReservedStage reports whether name is a stage name every generated
// Containerfile may use, so no layer or image can take it: a layer's stage
// would clash, and bake would put a parent image of that name in place of
// the stage.
func ReservedStage(name string) bool {
	return slices.Contains(fixedStages, name) || strings.HasSuffix(name, PixiStageSuffix)
}

// CheckName checks an image, layer or volume name (kind "image", "layer"
// or "volume").
func CheckName(kind, s string) error {
	switch {
	case !ValidName(s):
		return fmt.Errorf("invalid %s name %q: use lowercase letters, digits and single hyphens (like \"my-%s\")", kind, clip(s), kind)
	case len(s) > MaxNameLen:
		return fmt.Errorf("%s name %q is %d characters long: at most %d", kind, clip(s), len(s), MaxNameLen)
	case ReservedStage(s):
		return fmt.Errorf("%s name %q is reserved for a Containerfile build stage", kind, s)
	case kind == "image" && slices.Contains(ReservedImageNames, s):
		return fmt.Errorf("image name %q is reserved: ov keeps its own data in .build/%s/", s, s)
	}
	return nil
}

// CheckTag reports whether tag can be used as an image tag ("auto" included),
// for --tag flags.
func CheckTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("invalid tag %q: use letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')", clip(tag))
	}
	return nil
}

// MaxEnvValue bounds an env value: a Containerfile line carries at most
// 65,535 bytes (BuildKit's parser refuses longer ones), escaping can double
// a value, and the ENV line needs room for its key.
const MaxEnvValue = 16 << 10

// CheckEnvValue rejects what a Containerfile ENV cannot carry: a Dockerfile
// has no escape for a newline or carriage return (a backslash before a
// newline continues the line), nor a line over 65,535 bytes.
func CheckEnvValue(v string) error {
	if i := strings.IndexFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }); i >= 0 {
		return fmt.Errorf("value %q contains a control character (newline?), which a Containerfile ENV cannot carry", clip(v))
	}
	if len(v) > MaxEnvValue {
		return fmt.Errorf("value %q is %d bytes long: at most %d", clip(v), len(v), MaxEnvValue)
	}
	return nil
}

// CheckService checks a layer's service text, which becomes a supervisord
// fragment concatenated after the others: it must start with a section
// header ("[program:x]") at column 0 (text before it would land in the
// previous fragment's section, an indented line continues its last value) and must not hold a NUL or a carriage return
// (supervisord reads a lone CR as a line end, so a value could start a new
// line).
func CheckService(name, text string) error {
	if strings.ContainsRune(text, 0) {
		return fmt.Errorf("service contains a NUL byte")
	}
	if strings.ContainsRune(text, '\r') {
		return fmt.Errorf("service contains a carriage return (CR): use plain newlines")
	}
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, ";") || strings.HasPrefix(t, "#") {
			continue
		}
		// Indented, even a header continues the previous fragment's
		// last value.
		if !strings.HasPrefix(line, "[") || !strings.HasSuffix(t, "]") || len(t) < 3 {
			return fmt.Errorf("service must start with a section header like [program:%s] at the start of a line, not %q", name, clip(line))
		}
		return nil
	}
	return fmt.Errorf("service has no section: start it with a header like [program:%s]", name)
}

// CheckPort checks a port number.
func CheckPort(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("port %d is out of range (1-65535)", p)
	}
	return nil
}

// checkPortMapping accepts "port" and "host:container".
func checkPortMapping(s string) error {
	parts := strings.Split(s, ":")
	if len(parts) > 2 {
		return fmt.Errorf("invalid port mapping %q: use \"port\" or \"host:container\"", clip(s))
	}
	for _, part := range parts {
		n, err := strconv.Atoi(part)
		if err != nil || strings.HasPrefix(part, "+") || strings.HasPrefix(part, "-") {
			return fmt.Errorf("invalid port mapping %q: use \"port\" or \"host:container\"", clip(s))
		}
		if err := CheckPort(n); err != nil {
			return fmt.Errorf("invalid port mapping %q: %v", clip(s), err)
		}
		if part[0] == '0' { // podman and docker differ on "08080"; ov shell refuses it
			return fmt.Errorf("invalid port mapping %q: a port has no leading zero", clip(s))
		}
	}
	return nil
}

// normalizePlatform parses an os/arch[/variant] platform and returns its
// canonical form ("linux/aarch64" -> "linux/arm64").
func normalizePlatform(s string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("invalid platform %q: %s", clip(s), why)
	}
	if n := strings.Count(s, "/"); n < 1 || n > 2 {
		return bad("use os/arch or os/arch/variant, like \"linux/amd64\"")
	}
	p, err := platforms.Parse(s)
	if err != nil {
		return bad("not a platform, use os/arch like \"linux/amd64\"")
	}
	p = platforms.Normalize(p)
	if p.OS != "linux" {
		return bad("only linux platforms are supported")
	}
	if !contains(knownArch, p.Architecture) {
		return bad("unknown architecture " + strconv.Quote(clip(p.Architecture)))
	}
	return platforms.Format(p), nil
}

// checkBase accepts an external image reference ("quay.io/fedora/fedora:43",
// "ubuntu:24.04", with or without a digest).
func checkBase(s string) error {
	if _, err := reference.ParseNormalizedNamed(s); err != nil {
		return fmt.Errorf("base %q is neither an image in images.yml nor a valid image reference", clip(s))
	}
	return nil
}

// checkRegistry accepts a repository prefix such as "ghcr.io/owner" or
// "localhost:5000".
func checkRegistry(s string) error {
	named, err := reference.ParseNormalizedNamed(s + "/x")
	if err != nil || !reference.IsNameOnly(named) {
		return fmt.Errorf("invalid registry %q: use a repository prefix like \"ghcr.io/owner\"", clip(s))
	}
	return nil
}

func checkUser(s string) error {
	if !userRE.MatchString(s) {
		return fmt.Errorf("invalid user name %q: use lowercase letters, digits, '_' and '-', starting with a letter or '_'", clip(s))
	}
	return nil
}

func checkID(what string, v int) error {
	if v < 0 || v > 2147483647 {
		return fmt.Errorf("%s %d is out of range (0-2147483647)", what, v)
	}
	return nil
}

func checkPkg(s string) error {
	if s != "rpm" && s != "deb" {
		return fmt.Errorf("pkg must be \"rpm\" or \"deb\", got %q", clip(s))
	}
	return nil
}

func checkPackage(what, s string) error {
	if !pkgRE.MatchString(s) {
		return fmt.Errorf("invalid %s %q: use letters, digits and . _ + - @ : ~ = / ( ) *, starting with a letter, digit, '_', '@' or '/'", what, clip(s))
	}
	return nil
}

func checkGlob(s string) error {
	if !globRE.MatchString(s) {
		return fmt.Errorf("invalid exclude pattern %q: use letters, digits and . _ + - @ : ~ = / ( ) * ? [ ], not starting with '-'", clip(s))
	}
	return nil
}

func checkOption(s string) error {
	if !optionRE.MatchString(s) {
		return fmt.Errorf("invalid dnf option %q: use a flag like \"--setopt=tsflags=noscripts\"", clip(s))
	}
	return nil
}

func checkCopr(s string) error {
	if !coprRE.MatchString(s) {
		return fmt.Errorf("invalid copr repository %q: use \"owner/project\"", clip(s))
	}
	return nil
}

func checkRepoName(s string) error {
	if !repoRE.MatchString(s) {
		return fmt.Errorf("invalid repository name %q: use letters, digits and . _ : -", clip(s))
	}
	return nil
}

func checkURL(what, s string, schemes ...string) error {
	u, err := url.Parse(s)
	if err != nil || !urlRE.MatchString(s) || !contains(schemes, u.Scheme) || (u.Scheme != "file" && u.Host == "") {
		return fmt.Errorf("invalid %s %q: use a URL (%s) without spaces or quotes", what, clip(s), strings.Join(schemes, ", "))
	}
	return nil
}

// CheckHost checks a route host: a DNS name.
func CheckHost(s string) error {
	if len(s) > 253 || !dnsRE.MatchString(s) {
		return fmt.Errorf("invalid route host %q: use a DNS name like \"app.localhost\"", clip(s))
	}
	return nil
}

func checkEnvKey(s string) error {
	if s == "PATH" {
		return fmt.Errorf("env must not set PATH directly (use path_append)")
	}
	if !envKeyRE.MatchString(s) {
		return fmt.Errorf("invalid env name %q: use letters, digits and '_', not starting with a digit", clip(s))
	}
	return nil
}

func checkPathEntry(s string) error {
	if s == "" || strings.ContainsAny(s, ":\n\r\x00") {
		return fmt.Errorf("invalid path_append entry %q: a non-empty directory without ':' or newlines", clip(s))
	}
	return nil
}
