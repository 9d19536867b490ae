package testenv

import (
	"archive/tar"
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// FakeBootcScript is BootcBase's /usr/bin/bootc, a test double: `bootc
// container lint` passes only as root, as the real one needs; anything else
// fails.
const FakeBootcScript = `#!/bin/sh
# test double for bootc (ov internal/testenv): NOT bootc.
[ "$*" = "container lint" ] || { echo "fake bootc: only 'container lint' (test double)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "fake bootc: container lint needs root, runs as uid $(id -u)" >&2; exit 1; }
echo "fake bootc: lint ok"
`

// publishBootcBase derives BootcBase from the busybox layout and pushes it.
// Derived afresh at each start, like the fake pixi image.
func publishBootcBase(ctx context.Context, busyboxDir, host string) error {
	idx, err := deriveBusybox(busyboxDir, []tarEntry{
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/local", Linkname: "../var/usrlocal", Mode: 0o777}},
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "usr/bin/bootc", Mode: 0o755}, body: []byte(FakeBootcScript)},
	})
	if err != nil {
		return fmt.Errorf("bootc base: %w", err)
	}
	ref, err := mirrorRef(host, BootcBase)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}
