package testenv

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// removers is how many unlinks removeAll keeps in flight.
const removers = 32

// removeAll is os.RemoveAll with many unlinks in flight. An Env's Dir holds
// ~100k files after the e2e run (dockerd's and buildkitd's layers), and on a
// disk where each unlink waits on the device (ext4 with online discard on a
// virtual disk: ~0.35 ms a file) removing them one at a time took 50 s of
// the run's teardown; 32 at a time is 2-5x faster there. Symbolic links are
// removed, never followed. Files go as the walk finds them, then the
// directories deepest first; os.RemoveAll ends it, for anything the walk
// missed (a file created meanwhile) and to report what stays.
func removeAll(dir string) error {
	files := make(chan string, removers)
	done := removeFrom(files)
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil // os.RemoveAll below reports what stays
		case d.IsDir():
			dirs = append(dirs, p)
		default:
			files <- p
		}
		return nil
	})
	close(files)
	done()
	if err != nil {
		return os.RemoveAll(dir)
	}
	// Deepest first; directories of one depth are independent.
	depth := func(p string) int { return strings.Count(p, string(filepath.Separator)) }
	sort.SliceStable(dirs, func(i, j int) bool { return depth(dirs[i]) > depth(dirs[j]) })
	for len(dirs) > 0 {
		n := 1
		for n < len(dirs) && depth(dirs[n]) == depth(dirs[0]) {
			n++
		}
		level := make(chan string, n)
		for _, d := range dirs[:n] {
			level <- d
		}
		close(level)
		removeFrom(level)()
		dirs = dirs[n:]
	}
	return os.RemoveAll(dir)
}

// removeFrom removes the paths (files, or empty directories) received on
// ch, removers at a time, ignoring errors (the caller's final os.RemoveAll
// reports them). The returned func waits until ch is closed and drained.
func removeFrom(ch <-chan string) (wait func()) {
	var wg sync.WaitGroup
	for range removers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				os.Remove(p)
			}
		}()
	}
	return wg.Wait
}
