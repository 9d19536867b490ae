package build

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/overthink/ov/plan"
)

// epochInputs are the project's files whose commit dates its images: a
// commit elsewhere in the repository changes no image, so not their epoch.
var epochInputs = []string{"images.yml", "layers"}

// gitArgs are git's arguments to run args in dir on the project's inputs.
func gitArgs(dir string, args ...string) []string {
	argv := append([]string{"-C", dir}, args...)
	return append(append(argv, "--"), epochInputs...)
}

// statusArgv lists uncommitted changes (untracked files too) to the inputs.
func statusArgs(dir string) []string {
	return gitArgs(dir, "status", "--porcelain", "--untracked-files=all")
}

// lastCommitArgs prints the commit time (Unix seconds) and hash of the
// last commit that changed the inputs.
func lastCommitArgs(dir string) []string {
	return gitArgs(dir, "log", "-1", "--format=%ct %H")
}

// DefaultEpoch is the SOURCE_DATE_EPOCH of a project at dir with no
// explicit one: the time of the last commit that changed images.yml or
// layers/ when the project is a git checkout without uncommitted changes
// to them, else now (Epoch.Now). A build of one commit is then stamped
// the same wherever it runs.
func DefaultEpoch(ctx context.Context, dir string, now time.Time) *plan.Epoch {
	e, _ := FromGit(ctx, dir, now)
	return e
}

// FromGit is DefaultEpoch and the project's origin: the URL of its
// remote "origin" (credentials removed), and the commit the epoch is
// that of (none when the epoch is now).
func FromGit(ctx context.Context, dir string, now time.Time) (*plan.Epoch, plan.Origin) {
	o := plan.Origin{Source: remoteURL(ctx, dir)}
	t, rev, ok := lastCommit(ctx, dir)
	if !ok {
		return &plan.Epoch{Unix: now.Unix(), Now: true}, o
	}
	o.Revision = rev
	return &plan.Epoch{Unix: t}, o
}

// lastCommit is the time and hash of the last commit of a clean
// checkout's inputs; false when dir is no git checkout (or git is
// missing), the inputs have uncommitted changes or were never committed.
func lastCommit(ctx context.Context, dir string) (int64, string, bool) {
	status, err := git(ctx, statusArgs(dir))
	if err != nil || len(status) > 0 {
		return 0, "", false
	}
	out, err := git(ctx, lastCommitArgs(dir))
	if err != nil {
		return 0, "", false
	}
	ct, rev, _ := strings.Cut(string(bytes.TrimSpace(out)), " ")
	t, err := strconv.ParseInt(ct, 10, 64)
	return t, rev, err == nil && rev != ""
}

// remoteURL is the URL of dir's remote "origin" without the user and
// password an HTTPS URL may carry; "" when there is none.
func remoteURL(ctx context.Context, dir string) string {
	out, err := git(ctx, []string{"-C", dir, "remote", "get-url", "origin"})
	if err != nil {
		return ""
	}
	s := string(bytes.TrimSpace(out))
	if u, err := url.Parse(s); err == nil && u.User != nil && u.Scheme != "" {
		u.User = nil
		return u.String()
	}
	return s
}

func git(ctx context.Context, args []string) ([]byte, error) {
	return exec.CommandContext(ctx, "git", args...).Output()
}

// ParseEpoch reads an explicit SOURCE_DATE_EPOCH: Unix seconds, not negative.
func ParseEpoch(s string) (*plan.Epoch, error) {
	t, err := strconv.ParseInt(s, 10, 64)
	if err != nil || t < 0 {
		return nil, fmt.Errorf("source date epoch %q: want Unix seconds (a whole number, 0 or more)", s)
	}
	return &plan.Epoch{Unix: t, Explicit: true}, nil
}
