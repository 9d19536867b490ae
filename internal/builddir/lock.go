package builddir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LockFile holds the lock, relative to the project.
const LockFile = Dir + "/.lock"

// Lock is a held lock on a project's .build/.
type Lock struct{ f *os.File }

// Acquire takes the exclusive lock on project's .build/ (creating it),
// waiting for another ov that holds it: waiting is called once, with that
// ov's pid, before the wait. The kernel drops the lock when its holder
// exits, even by kill -9. Holding it, Acquire removes the temporary files
// a killed writer left. Release the lock with Unlock.
func Acquire(ctx context.Context, project string, waiting func(pid int)) (*Lock, error) {
	return acquire(ctx, project, syscall.LOCK_EX, waiting)
}

// AcquireShared takes the lock shared, for a reader that needs the files of
// one run: writers wait for it and it waits for a writer.
func AcquireShared(ctx context.Context, project string, waiting func(pid int)) (*Lock, error) {
	return acquire(ctx, project, syscall.LOCK_SH, waiting)
}

func acquire(ctx context.Context, project string, how int, waiting func(pid int)) (*Lock, error) {
	if err := MkdirAll(project, Dir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(project, LockFile), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &LinkError{Rel: LockFile, What: "a symbolic link"}
		}
		return nil, err
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", LockFile, err)
		}
		if !told && waiting != nil {
			waiting(holder(f))
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	l := &Lock{f: f}
	if how == syscall.LOCK_EX {
		f.Truncate(0)
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err := sweep(project); err != nil {
			l.Unlock()
			return nil, err
		}
	}
	return l, nil
}

// holder is the pid the lock file names, or 0.
func holder(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	return pid
}

// Unlock releases the lock.
func (l *Lock) Unlock() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the descriptor drops the flock
		l.f = nil
	}
}

// sweepDepth is how deep below .build/ temporary files are looked for:
// .build/<image>/fragments/.x.conf.*.tmp is the deepest; image layouts
// under .build/oci/<image>/ are not walked.
const sweepDepth = 3

// sweep removes the temporary files and directories of writers that died:
// dot names ending in ".tmp" (generated files) or holding ".tmp-" (build
// records, OCI layouts). Only a lock holder may call it.
func sweep(project string) error {
	root := filepath.Join(project, Dir)
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		depth := strings.Count(filepath.ToSlash(rel), "/") + 1
		name := d.Name()
		if p != root && IsTemp(name) {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() && p != root && depth >= sweepDepth {
			return filepath.SkipDir
		}
		return nil
	})
}

// IsTemp reports whether name is one of the temporary names ov's writers
// use under .build/.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && (strings.HasSuffix(name, ".tmp") || strings.Contains(name, ".tmp-"))
}
