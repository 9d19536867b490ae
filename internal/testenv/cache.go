package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// cacheRoot is where built bases and task archives persist between runs:
// $OV_TESTENV_CACHE, else $XDG_CACHE_HOME/ov-testenv, else ~/.cache/ov-testenv.
func cacheRoot() (string, error) {
	dir := os.Getenv("OV_TESTENV_CACHE")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("testenv: cache dir: %w", err)
		}
		dir = filepath.Join(base, "ov-testenv")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("testenv: cache dir: %w", err)
	}
	return dir, nil
}

// cached returns cache/key, a directory that build filled. Concurrent test
// processes serialise on a lock file so only one builds; the result appears
// atomically (build into a temp dir, then rename), so a crash mid-build
// leaves nothing that looks finished. build also gets a scratch directory on
// the same disk (debootstrap needs a real filesystem and room), removed after.
func cached(cache, key string, build func(out, scratch string) error) (string, error) {
	final := filepath.Join(cache, key)
	if fileExists(final) {
		return final, nil
	}
	lock, err := os.OpenFile(final+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("cache %s: %w", key, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("cache %s: lock: %w", key, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if fileExists(final) { // built by whoever held the lock before us
		return final, nil
	}
	// Holding the lock, any temp dirs of this key are a crashed build's.
	stale, _ := filepath.Glob(final + ".tmp-*")
	for _, d := range stale {
		removeTree(d)
	}
	tmp, err := os.MkdirTemp(cache, key+".tmp-")
	if err != nil {
		return "", fmt.Errorf("cache %s: %w", key, err)
	}
	defer removeTree(tmp)
	out, scratch := filepath.Join(tmp, "out"), filepath.Join(tmp, "scratch")
	if err := os.Mkdir(scratch, 0o755); err != nil {
		return "", fmt.Errorf("cache %s: %w", key, err)
	}
	if err := build(out, scratch); err != nil {
		return "", fmt.Errorf("cache %s: %w", key, err)
	}
	if err := os.Rename(out, final); err != nil {
		return "", fmt.Errorf("cache %s: %w", key, err)
	}
	return final, nil
}

// removeTree removes dir and everything in it, unmounting first so removal
// never reaches into a mounted filesystem.
func removeTree(dir string) error {
	if err := unmountUnder(dir); err != nil {
		return err
	}
	return removeAll(dir)
}
