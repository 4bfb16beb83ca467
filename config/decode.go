package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The file and the environment are merged as YAML nodes and decoded once, by
// walking the nodes beside the schema's Go types. yaml.v3 decodes each leaf
// value (and calls the enumerations' UnmarshalText); the walk adds what
// yaml.v3 does not give: the key path of every problem, every problem of the
// file at once, the environment variable a value came from, and the
// deprecated names of renamed keys (struct tag old:"name").

// yamlDecoder decodes one configuration.
type yamlDecoder struct {
	file     string
	warn     func(string)
	problems *problems
	envVar   map[*yaml.Node]string // nodes made from the environment
}

func newDecoder(file string, warn func(string)) *yamlDecoder {
	return &yamlDecoder{file: file, warn: warn, problems: newProblems(), envVar: map[*yaml.Node]string{}}
}

var yamlLine = regexp.MustCompile(`^yaml: (line \d+: )?`)

// parse returns the file's top-level node, an empty mapping for an empty
// file. A syntax error stops everything: there is nothing to walk.
func (d *yamlDecoder) parse(src []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("config: %s: %s", d.file, yamlLine.ReplaceAllString(err.Error(), "$1"))
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}, nil
	}
	return doc.Content[0], nil
}

// where says where n came from.
func (d *yamlDecoder) where(n *yaml.Node) string {
	if v, ok := d.envVar[n]; ok {
		return "environment variable " + v
	}
	if d.file == "" {
		return ""
	}
	return fmt.Sprintf("line %d of %s", n.Line, d.file)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func join(key, name string) string {
	if key == "" {
		return name
	}
	return key + "." + name
}

// field is one key of a struct of the schema.
type field struct {
	index int
	name  string   // the key
	names []string // the key and its deprecated names
	typ   reflect.Type
}

func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		names := []string{name}
		if old := f.Tag.Get("old"); old != "" {
			names = append(names, strings.Split(old, ",")...)
		}
		out = append(out, field{index: i, name: name, names: names, typ: f.Type})
	}
	return out
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// isLeaf reports whether yaml.v3 decodes t whole: everything but structs,
// pointers to structs and lists of structs.
func isLeaf(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		return false
	case reflect.Pointer, reflect.Slice:
		return t.Elem().Kind() != reflect.Struct
	}
	return true
}

// decode walks root into cfg.
func (d *yamlDecoder) decode(root *yaml.Node, cfg *Config) {
	d.value(root, reflect.ValueOf(cfg).Elem(), "")
}

func (d *yamlDecoder) value(n *yaml.Node, v reflect.Value, key string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if isNull(n) {
		return
	}
	t := v.Type()
	if isLeaf(t) {
		d.leaf(n, v, key)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.value(n, v.Elem(), key)
	case reflect.Struct:
		d.mapping(n, v, key)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.problems.decodeErr(key, d.where(n), fmt.Errorf("want a list, got %s", describe(n)))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.value(c, s.Index(i), fmt.Sprintf("%s[%d]", key, i))
		}
		v.Set(s)
	}
}

func (d *yamlDecoder) mapping(n *yaml.Node, v reflect.Value, key string) {
	if n.Kind != yaml.MappingNode {
		d.problems.decodeErr(key, d.where(n), fmt.Errorf("want keys and values, got %s", describe(n)))
		return
	}
	// Merge keys (<<: *anchor) first, so that the mapping's own keys win.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, val := n.Content[i], n.Content[i+1]; k.ShortTag() == "!!merge" {
			for val.Kind == yaml.AliasNode {
				val = val.Alias
			}
			if val.Kind == yaml.SequenceNode {
				for _, m := range val.Content {
					d.value(m, v, key)
				}
			} else {
				d.value(val, v, key)
			}
		}
	}
	fields := fieldsOf(v.Type())
	seen := map[int]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			continue
		}
		f, ok := lookup(fields, k.Value)
		if !ok {
			d.problems.failed[join(key, k.Value)] = true
			d.problems.list = append(d.problems.list, &KeyError{Key: key, Where: d.where(k), Err: fmt.Errorf("unknown config key %s", k.Value)})
			continue
		}
		path := join(key, f.name)
		if prev, dup := seen[f.index]; dup {
			d.problems.decodeErr(path, d.where(k), fmt.Errorf("is given twice (as %s, and as %s at %s)", k.Value, prev.Value, d.where(prev)))
			continue
		}
		seen[f.index] = k
		if k.Value != f.name {
			d.warn(fmt.Sprintf("config key %s is deprecated: call it %s (%s)", join(key, k.Value), path, d.where(k)))
		}
		d.value(val, v.Field(f.index), path)
	}
}

func lookup(fields []field, name string) (field, bool) {
	for _, f := range fields {
		for _, n := range f.names {
			if n == name {
				return f, true
			}
		}
	}
	return field{}, false
}

func (d *yamlDecoder) leaf(n *yaml.Node, v reflect.Value, key string) {
	d.problems.where[key] = d.where(n)
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			err = fmt.Errorf("want %s, got %s", want(v.Type()), describe(n))
		}
		d.problems.decodeErr(key, d.where(n), err)
		return
	}
	v.Set(tmp.Elem())
}

// describe names a node's value for an error message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "keys and values"
	}
	return strconv.Quote(n.Value)
}

// want names what a value of type t is written as.
func want(t reflect.Type) string {
	if t == reflect.TypeFor[time.Duration]() {
		return "a duration such as 500ms, 10s or 1m30s"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, not negative"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list"
	case reflect.Map:
		return "keys and values"
	}
	return "a string"
}
