package explain_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/overthink/ov/explain"
)

// statProject writes layers/a/f (content s) with an mtime well before now,
// so a cache written now holds it as clean.
func statProject(t *testing.T, s string) (dir, file string) {
	t.Helper()
	dir = t.TempDir()
	file = filepath.Join(dir, "layers", "a", "f")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	writeOld(t, file, s)
	return dir, file
}

var past = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// writeOld writes s to p in place and sets p's mtime to past.
func writeOld(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, past, past); err != nil {
		t.Fatal(err)
	}
}

// hashOnce opens the stat cache, fingerprints layers/a, saves the cache
// and says how many files it read.
func hashOnce(t *testing.T, dir string) (map[string]string, int) {
	t.Helper()
	f := explain.OpenFiles(dir)
	got, err := f.Dir(filepath.Join(dir, "layers", "a"), "layers/a")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	return got, f.Hashed()
}

// TestStatCache: a file whose stat matches the cache is not read again
// and keeps its digest; one rewritten with the same size and its mtime
// restored is read again because its ctime (in place) or inode (replaced)
// changed.
func TestStatCache(t *testing.T) {
	dir, file := statProject(t, "one")
	first, n := hashOnce(t, dir)
	if n != 1 {
		t.Fatalf("first run hashed %d files, want 1", n)
	}
	if again, n := hashOnce(t, dir); n != 0 || again["layers/a/f"] != first["layers/a/f"] {
		t.Fatalf("unchanged: hashed %d, digest %s; want 0, %s", n, again["layers/a/f"], first["layers/a/f"])
	}

	time.Sleep(10 * time.Millisecond) // a later ctime on coarse clocks
	writeOld(t, file, "two")          // same size and mtime, same inode
	inPlace, n := hashOnce(t, dir)
	if n != 1 || inPlace["layers/a/f"] == first["layers/a/f"] {
		t.Errorf("rewritten in place: hashed %d, digest unchanged %v; want 1, changed", n, inPlace["layers/a/f"] == first["layers/a/f"])
	}

	tmp := file + ".new"
	writeOld(t, tmp, "six")
	if err := os.Rename(tmp, file); err != nil { // a new inode, the same size and mtime
		t.Fatal(err)
	}
	replaced, n := hashOnce(t, dir)
	if n != 1 || replaced["layers/a/f"] == inPlace["layers/a/f"] {
		t.Errorf("replaced: hashed %d, digest unchanged %v; want 1, changed", n, replaced["layers/a/f"] == inPlace["layers/a/f"])
	}
	want, err := explain.OpenFiles(t.TempDir()).Dir(filepath.Dir(file), "layers/a")
	if err != nil {
		t.Fatal(err)
	}
	if replaced["layers/a/f"] != want["layers/a/f"] {
		t.Errorf("cached digest %s, uncached %s", replaced["layers/a/f"], want["layers/a/f"])
	}
}

// TestStatCacheRacy: an entry whose mtime is not older than the cache
// file (the file may have changed again in the same tick after it was
// hashed) is read again although its stat matches.
func TestStatCacheRacy(t *testing.T) {
	dir, _ := statProject(t, "one")
	hashOnce(t, dir)
	if err := os.Chtimes(filepath.Join(dir, explain.StatCache), past, past); err != nil {
		t.Fatal(err)
	}
	if _, n := hashOnce(t, dir); n != 1 {
		t.Errorf("racy entry: hashed %d files, want 1", n)
	}
}

// TestStatCacheCorrupt: a cache that does not parse is ignored (the files
// are hashed) and replaced.
func TestStatCacheCorrupt(t *testing.T) {
	dir, _ := statProject(t, "one")
	want, _ := hashOnce(t, dir)
	cache := filepath.Join(dir, explain.StatCache)
	if err := os.WriteFile(cache, []byte(`{"version":1,"files":{"layers/a/f":`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, n := hashOnce(t, dir)
	if n != 1 || got["layers/a/f"] != want["layers/a/f"] {
		t.Errorf("corrupt cache: hashed %d, digest %s; want 1, %s", n, got["layers/a/f"], want["layers/a/f"])
	}
	if _, n := hashOnce(t, dir); n != 0 {
		t.Errorf("after the corrupt cache was replaced: hashed %d, want 0", n)
	}
}
