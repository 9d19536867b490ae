package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// doc is one YAML file being read: its project-relative name and the error
// sink. Its helpers check shapes and types node by node so that every problem
// becomes a file:line error instead of a panic or a silent zero value.
type doc struct {
	file string
	errs *errList
}

func (d *doc) pos(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line} }

func (d *doc) errf(n *yaml.Node, format string, args ...any) {
	d.errs.add(d.pos(n), format, args...)
}

var digitsRE = regexp.MustCompile(`^[-+]?[0-9]+$`)

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse reads a YAML document into a node tree. A syntax error becomes a
// file:line error, a nil node and false. An empty document yields nil, true.
func (d *doc) parse(data []byte) (*yaml.Node, bool) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	err := dec.Decode(&root)
	if errors.Is(err, io.EOF) {
		return nil, true
	}
	if err == nil {
		// A second document would be ignored silently: refuse it.
		var next yaml.Node
		if dec.Decode(&next) != io.EOF {
			line := 0
			if len(next.Content) > 0 {
				line = next.Content[0].Line
			}
			d.errs.add(Pos{File: d.file, Line: line}, "a second YAML document (after ---): ov reads one document per file")
			return nil, false
		}
	}
	if err != nil {
		msg := err.Error()
		line := 0
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		} else {
			msg = strings.TrimPrefix(msg, "yaml: ")
		}
		d.errs.add(Pos{File: d.file, Line: line}, "invalid YAML: %s", msg)
		return nil, false
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, true
	}
	return deref(root.Content[0]), true
}

// deref follows aliases to the anchored node. Anchors cannot refer to
// themselves, but the loop is bounded anyway.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names a node's type for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		}
		return fmt.Sprintf("the string %q", clip(n.Value))
	}
	return "an unsupported YAML node"
}

// clip shortens values quoted in messages to their first line, at most 60
// bytes: an error never prints more of a file than the offending token.
func clip(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i] + "..."
	}
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// field is a known key with its value in a mapping.
type field struct {
	key, val *yaml.Node
}

// mapping checks that n is a mapping with only known keys and returns the
// non-null values by key. Unknown keys get the nearest known key suggested,
// or the message in hints when there is one for the key. where names the
// section ("" at the top of a file) for messages. A null or missing node
// yields an empty map; any other node is a type error.
func (d *doc) mapping(n *yaml.Node, where string, known []string, hints ...map[string]string) map[string]field {
	out := map[string]field{}
	n = deref(n)
	if isNull(n) {
		return out
	}
	if n.Kind != yaml.MappingNode {
		got := describe(n)
		if where == "" && n.Kind == yaml.ScalarNode {
			// A whole file that is one scalar is not quoted: it may be
			// anything but YAML (a credentials file).
			got = "a single value (is it a YAML file?)"
		}
		d.errf(n, "%sexpected a mapping, got %s", prefix(where), got)
		return out
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errf(k, "%skeys must be strings, got %s", prefix(where), describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.errf(k, "%sYAML merge keys (<<) are not supported", prefix(where))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errf(k, "%sduplicate key %q (first at line %d)", prefix(where), clip(k.Value), first)
			continue
		}
		seen[k.Value] = k.Line
		if !contains(known, k.Value) {
			if len(hints) > 0 && hints[0][k.Value] != "" {
				d.errf(k, "%s", hints[0][k.Value])
				continue
			}
			in := ""
			if where != "" {
				in = " in " + where
			}
			hint := didYouMean(k.Value, known)
			if hint == "" {
				hint = " (known keys: " + strings.Join(known, ", ") + ")"
			}
			d.errf(k, "unknown key %q%s%s", clip(k.Value), in, hint)
			continue
		}
		if isNull(v) {
			continue // null means unset
		}
		out[k.Value] = field{key: k, val: v}
	}
	return out
}

func prefix(where string) string {
	if where == "" {
		return ""
	}
	return where + ": "
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// str reads a scalar as a string. Numbers and booleans keep their literal
// text (tag: 1.2 is "1.2").
func (d *doc) str(name string, n *yaml.Node) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errf(n, "%s: expected a string, got %s", name, describe(n))
		return "", false
	}
	return n.Value, true
}

func (d *doc) integer(name string, n *yaml.Node) (int, bool) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" && digitsRE.MatchString(n.Value) {
		d.errf(n, "%s: integer %s is out of range", name, clip(n.Value))
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.errf(n, "%s: expected an integer, got %s", name, describe(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil || v != int64(int(v)) {
		d.errf(n, "%s: integer %s is out of range", name, clip(n.Value))
		return 0, false
	}
	return int(v), true
}

func (d *doc) boolean(name string, n *yaml.Node) (bool, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.errf(n, "%s: expected true or false, got %s", name, describe(n))
		return false, false
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		d.errf(n, "%s: expected true or false, got %s", name, describe(n))
		return false, false
	}
	return v, true
}

// item is a list element with its line.
type item[T any] struct {
	v    T
	line int
}

// list checks that n is a sequence and reads each element with get, keeping
// the elements that read cleanly.
func list[T any](d *doc, name string, n *yaml.Node, get func(string, *yaml.Node) (T, bool)) ([]item[T], bool) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "%s: expected a list, got %s", name, describe(n))
		return nil, false
	}
	out := make([]item[T], 0, len(n.Content))
	ok := true
	for _, e := range n.Content {
		e = deref(e)
		v, good := get(name+" entry", e)
		if !good {
			ok = false
			continue
		}
		out = append(out, item[T]{v: v, line: e.Line})
	}
	return out, ok
}

func values[T any](items []item[T]) []T {
	if items == nil {
		return nil
	}
	out := make([]T, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out
}
