package explain

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	gohash "hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/overthink/ov/internal/builddir"
)

// StatCache is where Files keeps the digests of a project's files between
// runs, relative to the project (records end in .json: no image's record
// is this file).
const StatCache = Dir + "/files.cache"

// statVersion is bumped when the cache's meaning changes; another version
// reads as empty.
const statVersion = 1

// Files hashes a project's files for Fingerprint: each file at most once
// per run however many images read it, several at a time, and not at all
// when its stat matches the stat cache of an earlier run (size, mtime,
// inode, ctime and mode, as git's index does). An entry whose mtime is not
// older than the cache file itself is "racily clean" (the file may have
// changed again within the same timestamp tick after it was hashed) and
// is hashed again. Save writes the cache under .build/state; a missing or
// corrupt cache only costs hashing.
type Files struct {
	project string
	old     map[string]statEntry
	written int64 // the cache file's mtime (ns): entries not older are racy
	sem     chan struct{}

	mu     sync.Mutex
	seen   map[string]*fileResult // this run, by project-relative path
	dirs   map[string]*dirResult  // this run, by directory and key prefix
	walked map[string]bool        // project-relative directories walked this run
	hashed int                    // files read this run
}

type dirResult struct {
	once    sync.Once
	digests map[string]string
	err     error
}

// statEntry is one file's stat and digests.
type statEntry struct {
	Size    int64  `json:"size"`
	Mtime   int64  `json:"mtime"` // ns
	Ctime   int64  `json:"ctime"` // ns
	Ino     uint64 `json:"ino"`
	Mode    uint32 `json:"mode"`
	Entry   string `json:"entry"`   // mode and content, as Stage.Files records it
	Content string `json:"content"` // content alone, as LayerYml records it
}

type statFile struct {
	Version int                  `json:"version"`
	Files   map[string]statEntry `json:"files"`
}

type fileResult struct {
	once sync.Once
	e    statEntry
	err  error
}

// OpenFiles reads project's stat cache.
func OpenFiles(project string) *Files {
	f := newFiles(project)
	r, err := builddir.Open(project, StatCache)
	if err != nil {
		return f
	}
	defer r.Close()
	fi, err := r.Stat()
	if err != nil {
		return f
	}
	b, err := builddir.ReadAllMax(r, builddir.MaxRead, StatCache)
	var sf statFile
	if err != nil || json.Unmarshal(b, &sf) != nil || sf.Version != statVersion {
		return f
	}
	f.old, f.written = sf.Files, fi.ModTime().UnixNano()
	if f.old == nil {
		f.old = map[string]statEntry{}
	}
	return f
}

func newFiles(project string) *Files {
	return &Files{project: project, old: map[string]statEntry{}, seen: map[string]*fileResult{},
		dirs: map[string]*dirResult{}, walked: map[string]bool{}, sem: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
}

// Hashed is how many files this run read (the others' stat matched).
func (f *Files) Hashed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hashed
}

// Save writes the stat cache when this run hashed a file: the entries seen
// this run, and the earlier ones outside the directories walked (another
// run's images).
func (f *Files) Save() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := statFile{Version: statVersion, Files: map[string]statEntry{}}
	for rel, e := range f.old {
		if !f.under(rel) {
			out.Files[rel] = e
		}
	}
	for rel, r := range f.seen {
		if r.err == nil {
			out.Files[rel] = r.e
		} else {
			delete(out.Files, rel)
		}
	}
	if f.hashed == 0 && len(out.Files) == len(f.old) {
		return nil // nothing new, nothing gone
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return builddir.WriteFile(f.project, StatCache, b)
}

// under reports whether rel is in a directory walked this run.
func (f *Files) under(rel string) bool {
	for d := path.Dir(rel); d != "." && d != "/"; d = path.Dir(d) {
		if f.walked[d] {
			return true
		}
	}
	return false
}

// entry hashes the regular file at abs (info is its stat, or nil to stat
// it here, following a symbolic link), once per run.
func (f *Files) entry(abs string, info fs.FileInfo) (statEntry, error) {
	rel, err := filepath.Rel(f.project, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return hashFile(abs, info) // outside the project: not cached
	}
	rel = filepath.ToSlash(rel)
	f.mu.Lock()
	r := f.seen[rel]
	if r == nil {
		r = &fileResult{}
		f.seen[rel] = r
	}
	f.mu.Unlock()
	r.once.Do(func() {
		if info == nil {
			if info, r.err = os.Stat(abs); r.err != nil {
				return
			}
		}
		cur := stat(info)
		if old, ok := f.old[rel]; ok && sameStat(old, cur) && old.Mtime < f.written {
			r.e = old
			return
		}
		f.sem <- struct{}{}
		r.e, r.err = hashFile(abs, info)
		<-f.sem
		f.mu.Lock()
		f.hashed++
		f.mu.Unlock()
	})
	return r.e, r.err
}

// stat is info's cache key with no digests.
func stat(info fs.FileInfo) statEntry {
	e := statEntry{Size: info.Size(), Mtime: info.ModTime().UnixNano(), Mode: uint32(info.Mode())}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		e.Ino, e.Ctime = st.Ino, st.Ctim.Nano()
	}
	return e
}

func sameStat(a, b statEntry) bool {
	return a.Size == b.Size && a.Mtime == b.Mtime && a.Ctime == b.Ctime && a.Ino == b.Ino && a.Mode == b.Mode
}

// hashFile reads the regular file at p once for both of its digests.
func hashFile(p string, info fs.FileInfo) (statEntry, error) {
	if info == nil {
		var err error
		if info, err = os.Stat(p); err != nil {
			return statEntry{}, err
		}
	}
	if !info.Mode().IsRegular() {
		return statEntry{}, fmt.Errorf("%s: not a regular file", p)
	}
	e := stat(info)
	r, err := os.Open(p)
	if err != nil {
		return e, err
	}
	defer r.Close()
	entry, content := modeHash(info, ""), sha256.New()
	if _, err := io.Copy(io.MultiWriter(entry, content), r); err != nil {
		return e, fmt.Errorf("%s: %w", p, err)
	}
	e.Entry, e.Content = digestOf(entry), digestOf(content)
	return e, nil
}

func digestOf(h gohash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

// Content is the digest of the content of the file at abs (a symbolic
// link followed), "" when it cannot be read.
func (f *Files) Content(abs string) string {
	e, err := f.entry(abs, nil)
	if err != nil {
		return ""
	}
	return e.Content
}

// Dir fingerprints every entry under dir by name, type, mode and content
// (a symlink by its target), keyed rel/<path>; the regular files are
// hashed in parallel. A directory is walked once per run: the map
// returned is shared, not to be modified.
func (f *Files) Dir(dir, rel string) (map[string]string, error) {
	f.mu.Lock()
	r := f.dirs[dir+"\x00"+rel]
	if r == nil {
		r = &dirResult{}
		f.dirs[dir+"\x00"+rel] = r
	}
	f.mu.Unlock()
	r.once.Do(func() { r.digests, r.err = f.walk(dir, rel) })
	return r.digests, r.err
}

func (f *Files) walk(dir, rel string) (map[string]string, error) {
	type file struct {
		key, abs string
		info     fs.FileInfo
	}
	out := map[string]string{}
	var files []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		sub, err := filepath.Rel(dir, p)
		if err != nil || sub == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		key := path.Join(rel, filepath.ToSlash(sub))
		switch {
		case info.Mode().IsRegular():
			files = append(files, file{key, p, info})
		case info.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[key] = digestOf(modeHash(info, t))
		default:
			out[key] = digestOf(modeHash(info, ""))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r, err := filepath.Rel(f.project, dir); err == nil {
		f.mu.Lock()
		f.walked[filepath.ToSlash(r)] = true
		f.mu.Unlock()
	}
	digests := make([]string, len(files))
	var g errgroup.Group
	for i, fl := range files {
		g.Go(func() error {
			e, err := f.entry(fl.abs, fl.info)
			digests[i] = e.Entry
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, fl := range files {
		out[fl.key] = digests[i]
	}
	return out, nil
}

// modeHash starts an entry's digest: its mode, then s.
func modeHash(info fs.FileInfo, s string) gohash.Hash {
	h := sha256.New()
	fmt.Fprintf(h, "%v\x00", info.Mode())
	io.WriteString(h, s)
	return h
}
