package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/overthink/ov/internal/builddir"
	"github.com/overthink/ov/spec"
)

// lockBuildDir takes the lock on p's .build/ for a command that writes it,
// saying so when it waits for another ov.
func lockBuildDir(ctx context.Context, g *Globals, p *spec.Project) (*builddir.Lock, error) {
	l, err := builddir.Acquire(ctx, p.Dir, func(pid int) {
		who := "another ov"
		if pid > 0 {
			who = fmt.Sprintf("another ov (pid %d)", pid)
		}
		fmt.Fprintf(g.Stderr, "ov: waiting for %s to finish writing %s/%s\n", who, p.Dir, builddir.Dir)
	})
	var le *builddir.LinkError
	if errors.As(err, &le) {
		return nil, &userError{err: err}
	}
	return l, err
}
