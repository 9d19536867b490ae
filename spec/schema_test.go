package spec

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// compiled compiles Schema(name) with a real JSON Schema validator.
func compiled(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	b, err := Schema(name)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaURL(name), doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaURL(name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

// validateYAML checks one YAML file against s, as an editor would (YAML
// read as JSON data).
func validateYAML(s *jsonschema.Schema, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return err
	}
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return err
	}
	return s.Validate(doc)
}

// TestSchemaKeysAreTheParsers: every key the parser knows is in the schema
// and no other (Schema fails on a difference), and the schema is valid
// JSON Schema.
func TestSchemaKeysAreTheParsers(t *testing.T) {
	for _, n := range SchemaNames {
		compiled(t, n)
	}
	var b schemaBuilder
	b.object("test", []string{"a", "b"}, "", map[string]js{"a": {}})
	if b.err == nil || !strings.Contains(b.err.Error(), "describes keys [a], the parser knows [a b]") {
		t.Errorf("a key without a description is not caught: %v", b.err)
	}
}

// projects finds every directory of the repository with an images.yml.
func projects(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".build" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.Name() == "images.yml" && d.Type().IsRegular() {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// TestValidProjectsPassTheSchema: every project in the repository that ov
// validate accepts passes the schema, images.yml and each layer.yml.
func TestValidProjectsPassTheSchema(t *testing.T) {
	images, layer := compiled(t, "images"), compiled(t, "layer")
	checked := 0
	for _, dir := range projects(t) {
		if _, err := Load(dir); err != nil {
			continue
		}
		checked++
		if err := validateYAML(images, filepath.Join(dir, "images.yml")); err != nil {
			t.Errorf("%s/images.yml validates but fails the schema: %v", dir, err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "layers", "*", "layer.yml"))
		for _, f := range files {
			if err := validateYAML(layer, f); err != nil {
				t.Errorf("%s validates but fails the schema: %v", f, err)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d valid projects found", checked)
	}
}

// shapeError matches a corpus error about a key or a type, naming its file.
var shapeError = regexp.MustCompile(`^\s*(?:validation error: )?(images\.yml|layers/[^:]+/layer\.yml):\d+: (.*)$`)

func isShapeError(msg string) bool {
	return strings.Contains(msg, "unknown key") || strings.Contains(msg, ": expected a") || strings.Contains(msg, "expected true or false")
}

// TestCorpusShapeErrorsFailTheSchema: where ov validate reports an unknown
// key or a wrong type, the schema rejects that file too.
func TestCorpusShapeErrorsFailTheSchema(t *testing.T) {
	schemas := map[string]*jsonschema.Schema{"images.yml": compiled(t, "images"), "layer.yml": compiled(t, "layer")}
	cases, _ := filepath.Glob("testdata/invalid/*/want.txt")
	checked := 0
	for _, want := range cases {
		data, err := os.ReadFile(want)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Dir(want)
		for _, line := range strings.Split(string(data), "\n") {
			m := shapeError.FindStringSubmatch(line)
			if m == nil || !isShapeError(m[2]) {
				continue
			}
			checked++
			if err := validateYAML(schemas[filepath.Base(m[1])], filepath.Join(dir, m[1])); err == nil {
				t.Errorf("%s: ov validate says %q, the schema accepts the file", dir, strings.TrimSpace(line))
			}
		}
	}
	if checked < 15 {
		t.Fatalf("only %d key or type errors found in the corpus", checked)
	}
}

// TestSchemaFilesCurrent: the schema files the repository serves (and the
// $schema lines point at) are what ov schema prints.
func TestSchemaFilesCurrent(t *testing.T) {
	for _, n := range SchemaNames {
		want, err := Schema(n)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "schema", n+".schema.json")
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not ov schema %s (go test ./spec -run TestSchemaFilesCurrent -update): %v", path, n, err)
		}
	}
}

// TestShippedFilesCarryTheSchemaLine: the project's own images.yml and
// layer.yml files (the shipped library and the examples) point editors at
// their schema.
func TestShippedFilesCarryTheSchemaLine(t *testing.T) {
	files, _ := filepath.Glob("../layers/*/layer.yml")
	more, _ := filepath.Glob("../examples/*/layers/*/layer.yml")
	files = append(append(files, more...), "../images.yml")
	more, _ = filepath.Glob("../examples/*/images.yml")
	files = append(files, more...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		kind := "layer"
		if filepath.Base(f) == "images.yml" {
			kind = "images"
		}
		if want := "# yaml-language-server: $schema=" + SchemaURL(kind) + "\n"; !strings.HasPrefix(string(data), want) {
			t.Errorf("%s does not start with %q", f, want)
		}
	}
	if len(files) < 8 {
		t.Fatalf("only %d files", len(files))
	}
}
