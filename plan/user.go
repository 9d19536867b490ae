package plan

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/overthink/ov/spec"
)

// UserLookup resolves the account an external base has at want.UID (see
// baseuser.Lookup). It returns want with a home when the base has none.
type UserLookup func(ctx context.Context, baseRef string, want spec.User) (spec.User, error)

// LookupError is a failure of Options.Users to resolve a base's user.
type LookupError struct {
	Base string
	Err  error
}

func (e *LookupError) Error() string { return e.Err.Error() }
func (e *LookupError) Unwrap() error { return e.Err }

// ImageUser resolves the account img's user steps run as, as Build does
// (users as in Options.Users): hosts that run the image need its home.
func ImageUser(ctx context.Context, p *spec.Project, img *spec.Image, users UserLookup) (spec.User, error) {
	u, _, err := newBuilder(ctx, p, Options{Users: users}).user(img)
	return u, err
}

// user resolves img's user: the parent's user unless img sets a user of its
// own (own is then true), else the passwd entry at the configured UID of the
// external base at the root of img's chain.
func (b *builder) user(img *spec.Image) (u spec.User, own bool, err error) {
	want := spec.User{Name: img.User, UID: img.UID, GID: img.GID}
	base := img
	for base.Parent != "" {
		parent := b.p.Images[base.Parent]
		if parent == nil {
			return spec.User{}, false, inputErr(spec.Pos{}, "base image %q is not in images.yml", base.Parent)
		}
		if base == img && parent.User == img.User && parent.UID == img.UID && parent.GID == img.GID {
			u, _, err := b.user(parent)
			return u, false, err
		}
		base = parent
	}
	u, err = b.lookup(base.Base, want)
	return u, base != img, err
}

// lookup resolves want in the external base ref.
func (b *builder) lookup(ref string, want spec.User) (spec.User, error) {
	key := fmt.Sprintf("%s\x00%d\x00%s\x00%d", ref, want.UID, want.Name, want.GID)
	if u, ok := b.users[key]; ok {
		return u, nil
	}
	u, err := b.opts.Users(b.ctx, ref, want)
	if err != nil {
		return spec.User{}, &LookupError{Base: ref, Err: err}
	}
	if u.Home == "" {
		u = u.WithDefaultHome()
	}
	if err := checkUser(u); err != nil {
		return spec.User{}, inputErr(spec.Pos{}, "base %q: %v", ref, err)
	}
	b.users[key] = u
	return u, nil
}

var (
	// Account names and homes from a base's /etc/passwd end up in shell
	// commands, mount options and WORKDIR: accept only plain ones.
	userNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*\$?$`)
	homeRE     = regexp.MustCompile(`^/[A-Za-z0-9_.+@-]+(/[A-Za-z0-9_.+@-]+)*$|^/$`)
)

func checkUser(u spec.User) error {
	if !userNameRE.MatchString(u.Name) || len(u.Name) > 32 {
		return fmt.Errorf("user name %q at uid %d is not a plain account name", u.Name, u.UID)
	}
	if !homeRE.MatchString(u.Home) || strings.Contains(u.Home, "/../") || strings.HasSuffix(u.Home, "/..") {
		return fmt.Errorf("home %q of user %q (uid %d) is not a plain absolute path", u.Home, u.Name, u.UID)
	}
	if u.UID < 0 || u.GID < 0 {
		return fmt.Errorf("user %q has a negative uid or gid", u.Name)
	}
	return nil
}

// userStep creates u's account unless the image has one at its UID.
func userStep(u spec.User) Step {
	id, gid, name := strconv.Itoa(u.UID), strconv.Itoa(u.GID), Quote(u.Name)
	return Step{Kind: Run, User: "root",
		Shell: "getent passwd " + id + " || (getent group " + gid + " || groupadd -g " + gid + " " + name +
			" && useradd -m -u " + id + " -g " + gid + " -s /bin/bash " + name + ")",
		Desc: "bootstrap: user " + u.Name}
}
