package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/overthink/ov/baseuser"
	"github.com/overthink/ov/plan"
	"github.com/overthink/ov/spec"
)

// A failed plan exits 1 for the user's mistakes (the project's, a base's)
// and 2 for a failure to read the project, which %v flattening used to
// report as exit 1.
func TestPlanErrorExitCodes(t *testing.T) {
	for name, c := range map[string]struct {
		err    error
		code   int
		stderr string
	}{
		"spec error": {fmt.Errorf("image %q: %w", "app", &spec.Error{Pos: spec.Pos{File: "layers/svc/layer.yml"}, Msg: "bad host"}), 1,
			"ov: image \"app\": layers/svc/layer.yml: bad host\n"},
		"refused file": {fmt.Errorf("supervisord header: %w", &spec.FileError{Rel: spec.HeaderFile, Msg: "too large"}), 1,
			"ov: supervisord header: " + spec.HeaderFile + ": too large\n"},
		"base lookup": {fmt.Errorf("image %q: %w", "app", &plan.LookupError{Base: "b", Err: errors.New("registry down")}), 1,
			"ov: image \"app\": registry down\n"},
		"cancelled lookup": {fmt.Errorf("image %q: %w", "app", &plan.LookupError{Base: "b", Err: context.Canceled}), 2,
			"ov: internal error: image \"app\": context canceled\n"},
		"read failure": {fmt.Errorf("supervisord header: %w", &fs.PathError{Op: "read", Path: "x", Err: syscall.EIO}), 2,
			"ov: internal error: supervisord header: read x: input/output error\n"},
	} {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := report(&stderr, planError(c.err)); code != c.code || stderr.String() != c.stderr {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", code, stderr.String(), c.code, c.stderr)
			}
		})
	}

	// Through the plan: a project loaded fine whose supervisord header then
	// cannot be read.
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/project")); err != nil {
		t.Fatal(err)
	}
	p, err := spec.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, spec.HeaderFile), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = plan.Build(p, nil, plan.Options{CalVer: "1", Users: baseuser.Offline})
	var stderr bytes.Buffer
	if code := report(&stderr, planError(err)); code != 2 || !strings.Contains(stderr.String(), "is a directory") {
		t.Errorf("unreadable header: exit %d, stderr %q; want exit 2 for the read failure", code, stderr.String())
	}
}
