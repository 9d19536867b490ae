package spec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/semver"
)

func TestEnv(t *testing.T) {
	layers := []*Layer{
		{Name: "a", Env: map[string]string{"B": "~/b", "A": "first", "KEEP": "$HOME/x:${HOME}/y"}, PathAppend: []string{"~/.a/bin", "/opt/a"}},
		{Name: "b"},
		{Name: "c", Env: map[string]string{"A": "second", "HOMER": "$HOMER", "T": "not~/home", "ONLY": "~"}, PathAppend: []string{"$HOME/.c/bin", "~/.a/bin"}},
	}
	env, path := Env(layers, "/home/dev")
	wantEnv := []KV{
		{"A", "second"},
		{"B", "/home/dev/b"},
		{"HOMER", "$HOMER"},
		{"KEEP", "/home/dev/x:/home/dev/y"},
		{"ONLY", "/home/dev"},
		{"T", "not~/home"},
	}
	if !reflect.DeepEqual(env, wantEnv) {
		t.Errorf("env\ngot  %v\nwant %v", env, wantEnv)
	}
	wantPath := []string{"/home/dev/.a/bin", "/opt/a", "/home/dev/.c/bin"}
	if !reflect.DeepEqual(path, wantPath) {
		t.Errorf("path_append\ngot  %v\nwant %v", path, wantPath)
	}
	if env, path := Env(nil, "/root"); env != nil || path != nil {
		t.Errorf("no layers: %v %v", env, path)
	}
}

func TestCalVer(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "2026.1.0"},
		{time.Date(2026, 2, 16, 9, 5, 59, 999, time.UTC), "2026.47.905"},
		{time.Date(2026, 2, 16, 0, 5, 0, 0, time.UTC), "2026.47.5"},
		{time.Date(2026, 2, 16, 23, 59, 0, 0, time.UTC), "2026.47.2359"},
		{time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC), "2026.365.2359"},
		{time.Date(2024, 12, 31, 12, 0, 0, 0, time.UTC), "2024.366.1200"}, // leap year
		{time.Date(2024, 2, 29, 10, 10, 0, 0, time.UTC), "2024.60.1010"},
		// Converted to UTC first: 01:30 on 1 Jan in UTC+2 is 23:30 on 31 Dec.
		{time.Date(2027, 1, 1, 1, 30, 0, 0, time.FixedZone("UTC+2", 2*3600)), "2026.365.2330"},
	}
	for _, tt := range tests {
		if got := CalVer(tt.t); got != tt.want {
			t.Errorf("CalVer(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

// TestCalVerSortsAsSemver walks minutes across a leap year and two year
// boundaries: every version is valid semver and sorts after the previous.
func TestCalVerSortsAsSemver(t *testing.T) {
	prev := ""
	for tm := time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC); tm.Before(time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)); tm = tm.Add(7 * time.Minute) {
		v := "v" + CalVer(tm)
		if !semver.IsValid(v) {
			t.Fatalf("%s is not valid semver", v)
		}
		if prev != "" && semver.Compare(prev, v) >= 0 {
			t.Fatalf("%s does not sort after %s", v, prev)
		}
		prev = v
	}
}

func TestTags(t *testing.T) {
	tests := []struct {
		img      Image
		override string
		want     []string
	}{
		{Image{Name: "fedora", Registry: "ghcr.io/acme", Tag: "auto"}, "", []string{"ghcr.io/acme/fedora:2026.47.905", "ghcr.io/acme/fedora:latest"}},
		{Image{Name: "fedora", Tag: "auto"}, "", []string{"fedora:2026.47.905", "fedora:latest"}},
		{Image{Name: "fedora", Registry: "ghcr.io/acme", Tag: "nightly"}, "", []string{"ghcr.io/acme/fedora:nightly"}},
		{Image{Name: "fedora", Registry: "ghcr.io/acme", Tag: "1.2.3"}, "", []string{"ghcr.io/acme/fedora:1.2.3"}},
		{Image{Name: "fedora", Tag: "auto"}, "dev", []string{"fedora:dev", "fedora:latest"}},
		{Image{Name: "fedora", Tag: "auto"}, "latest", []string{"fedora:latest"}},
		{Image{Name: "fedora", Tag: "auto"}, "auto", []string{"fedora:2026.47.905", "fedora:latest"}},
		// The override replaces "auto" only: pinned tags stay.
		{Image{Name: "fedora", Tag: "1.2.3"}, "dev", []string{"fedora:1.2.3"}},
	}
	for _, tt := range tests {
		if got := tt.img.Tags("2026.47.905", tt.override); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v.Tags(%q) = %v, want %v", tt.img, tt.override, got, tt.want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	a := &Error{Pos: Pos{"images.yml", 3}, Msg: "bad"}
	b := &Error{Pos: Pos{"layers/x", 0}, Msg: "worse"}
	c := &Error{Msg: "no file"}
	if got := a.Error(); got != "images.yml:3: bad" {
		t.Error(got)
	}
	if got := b.Error(); got != "layers/x: worse" {
		t.Error(got)
	}
	if got := c.Error(); got != "no file" {
		t.Error(got)
	}
	if got := (Errors{a}).Error(); got != "validation error: images.yml:3: bad" {
		t.Error(got)
	}
	if got := (Errors{a, b}).Error(); got != "2 validation errors:\n  images.yml:3: bad\n  layers/x: worse" {
		t.Error(got)
	}
}

func TestCheckTag(t *testing.T) {
	for _, ok := range []string{"auto", "latest", "1.2.3", "2026.47.905", "v1_rc-2", "_x"} {
		if err := CheckTag(ok); err != nil {
			t.Errorf("CheckTag(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".x", "-x", "a b", "a:b", "a/b", string(make([]byte, 129))} {
		if CheckTag(bad) == nil {
			t.Errorf("CheckTag(%q) accepted", bad)
		}
	}
}

func TestMissingImagesYAML(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	errs, ok := err.(Errors)
	if !ok || len(errs) != 1 || errs[0].Pos.File != "images.yml" {
		t.Fatalf("got %v", err)
	}
}

// A project of the wrong shape, a link to outside it or a file too large
// is the user's error, naming the path, and never prints what the file
// holds; a read that fails otherwise is ov's.
func TestProjectFileErrors(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("password: hunter2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	images := "images:\n  app:\n    base: \"debian:12\"\n    pkg: deb\n    layers: [x]\n"
	layer := "deb:\n  packages: [curl]\n"
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"images.yml a directory", func(t *testing.T, dir string) { mkdir(t, dir, "images.yml") }, "images.yml: is a directory, not a file"},
		{"layers a file", func(t *testing.T, dir string) { write(t, dir, "images.yml", images); write(t, dir, "layers", "") }, "layers: is not a directory"},
		{"images.yml links outside", func(t *testing.T, dir string) { link(t, outside, dir, "images.yml") }, "images.yml: resolves to outside the project"},
		{"layer.yml links outside", func(t *testing.T, dir string) {
			write(t, dir, "images.yml", images)
			mkdir(t, dir, "layers/x")
			link(t, outside, dir, "layers/x/layer.yml")
		}, "layers/x/layer.yml: resolves to outside the project"},
		{"root.yml links outside", func(t *testing.T, dir string) {
			write(t, dir, "images.yml", images)
			write(t, dir, "layers/x/layer.yml", layer)
			link(t, outside, dir, "layers/x/root.yml")
		}, "layers/x/root.yml: resolves to outside the project"},
		{"layer directory links outside", func(t *testing.T, dir string) {
			write(t, dir, "images.yml", images)
			link(t, filepath.Dir(outside), dir, "layers/x")
		}, "layers/x: resolves to outside the project"},
		{"layers links outside", func(t *testing.T, dir string) {
			write(t, dir, "images.yml", images)
			link(t, filepath.Dir(outside), dir, "layers")
		}, "layers: resolves to outside the project"},
		{"supervisord header links outside", func(t *testing.T, dir string) {
			write(t, dir, "images.yml", images)
			write(t, dir, "layers/x/layer.yml", layer)
			link(t, outside, dir, HeaderFile)
		}, HeaderFile + ": resolves to outside the project"},
		{"huge layer.yml", func(t *testing.T, dir string) {
			write(t, dir, "images.yml", images)
			write(t, dir, "layers/x/layer.yml", layer+"#"+strings.Repeat("x", MaxFileSize)+"\n")
		}, "layers/x/layer.yml: larger than 4 MiB: not read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			_, err := Load(dir)
			var errs Errors
			if !errors.As(err, &errs) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("got %v, want validation error %q", err, tt.want)
			}
		})
	}
	// A link inside the project is fine.
	dir := t.TempDir()
	write(t, dir, "images.yml", images)
	write(t, dir, "shared/x/layer.yml", layer)
	link(t, "../shared/x", dir, "layers/x")
	if _, err := Load(dir); err != nil {
		t.Errorf("layer linked inside the project: %v", err)
	}
	// -C at a file or nowhere.
	var errs Errors
	for _, d := range []string{outside, filepath.Join(dir, "missing")} {
		if _, err := Load(d); !errors.As(err, &errs) || !strings.Contains(err.Error(), "is not a project directory") {
			t.Errorf("Load(%s): %v", d, err)
		}
	}
}

func mkdir(t *testing.T, dir, rel string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, rel), 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, dir, rel, s string) {
	t.Helper()
	mkdir(t, dir, filepath.Dir(rel))
	if err := os.WriteFile(filepath.Join(dir, rel), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func link(t *testing.T, target, dir, rel string) {
	t.Helper()
	mkdir(t, dir, filepath.Dir(rel))
	if err := os.Symlink(target, filepath.Join(dir, rel)); err != nil {
		t.Fatal(err)
	}
}

func TestSuggest(t *testing.T) {
	names := []string{"fedora", "fedora-test", "python", "pixi", "packages", "gpgkey"}
	for in, want := range map[string]string{
		"fedroa": "fedora", "fedora-tes": "fedora-test", "pyton": "python", "pixy": "pixi",
		"pakages": "packages", "gpg": "gpgkey", "fedora-testing": "fedora-test",
		"x": "", "zzzzzz": "", "ubuntu": "", "px": "",
	} {
		if got := suggest(in, names); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// A file that is one scalar is not quoted in the error.
func TestErrorsQuoteOneLine(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "images.yml", "images:\n  app:\n    base: \"debian:12\"\n    pkg: deb\n    layers: [x]\n")
	write(t, dir, "layers/x/layer.yml", "AWS_ACCESS_KEY_ID=AKIA\n  aws_secret_access_key=hunter2\n")
	_, err := Load(dir)
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "layers/x/layer.yml:1: expected a mapping, got a single value (is it a YAML file?)") {
		t.Errorf("got %v", err)
	}
}
