package config

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The environment is laid over the file as YAML nodes before anything is
// decoded, so an environment value goes through exactly the decoding and the
// checks of a value in the file, and its errors name the variable.
//
// koanf was tried for this layering and measured short of what the
// configuration promises: its env provider cannot tell the key separator from
// the underscores inside keys (OUTBOX_CDC_POSTGRES_STATUS_INTERVAL became
// postgres.status.interval) without a transform that knows the schema,
// treats a list index as a map key (OUTBOX_CDC_SINKS_0_PATH replaced the
// file's whole sinks list), and its flattened maps lose the line of every
// value and cannot say which keys or variables match nothing.

// step is one step of a key path: a key (by its name and deprecated names)
// or a list index.
type step struct {
	name  string
	names []string
	via   string // the name the variable used
	index int    // -1 for a key
}

// setting is one environment variable that names a key.
type setting struct {
	name, value string
	steps       []step
	leaf        reflect.Type
}

// resolveEnv finds the key path that name (without the prefix) names under
// struct type t.
func resolveEnv(t reflect.Type, name string) ([]step, reflect.Type, bool) {
	for _, f := range fieldsOf(t) {
		for _, key := range f.names {
			up := strings.ToUpper(key)
			st := step{name: f.name, names: f.names, via: key, index: -1}
			if name == up && isLeaf(f.typ) {
				return []step{st}, f.typ, true
			}
			rest, ok := strings.CutPrefix(name, up+"_")
			if !ok || isLeaf(f.typ) {
				continue
			}
			et := f.typ
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Slice {
				idx, rest2, ok := strings.Cut(rest, "_")
				i, err := strconv.Atoi(idx)
				if !ok || err != nil || strings.TrimLeft(idx, "0123456789") != "" {
					continue
				}
				if sub, leaf, ok := resolveEnv(et.Elem(), rest2); ok {
					return append([]step{st, {index: i}}, sub...), leaf, true
				}
				continue
			}
			if sub, leaf, ok := resolveEnv(et, rest); ok {
				return append([]step{st}, sub...), leaf, true
			}
		}
	}
	return nil, nil, false
}

// overlayEnv lays every OUTBOX_CDC_ variable of environ over root, except
// OUTBOX_CDC_CONFIG (the commands' --config default) and the test harness's
// OUTBOX_CDC_TEST_ variables (internal/harness), which name no key and are
// not reported.
func (d *yamlDecoder) overlayEnv(root *yaml.Node, environ []string) {
	var settings []setting
	var unknown []string
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		rest, ours := strings.CutPrefix(k, EnvPrefix+"_")
		// OUTBOX_CDC_CONFIG names the file; OUTBOX_CDC_TOKEN is the admin
		// API token of the command line's client verbs; OUTBOX_CDC_TEST_* are
		// the test harness's.
		if !ok || !ours || rest == "CONFIG" || rest == "TOKEN" || strings.HasPrefix(rest, "TEST_") {
			continue
		}
		steps, leaf, ok := resolveEnv(reflect.TypeFor[Config](), rest)
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		settings = append(settings, setting{name: k, value: v, steps: steps, leaf: leaf})
	}
	slices.Sort(unknown)
	for _, k := range slices.Compact(unknown) {
		d.warn("environment variable " + k + " matches no config key; ignored")
	}
	// Lower list indices first, so that entries added at the end come in
	// order whatever the order of the environment.
	slices.SortStableFunc(settings, func(a, b setting) int {
		for i := 0; i < len(a.steps) && i < len(b.steps); i++ {
			if c := cmp.Compare(a.steps[i].index, b.steps[i].index); c != 0 {
				return c
			}
			if c := cmp.Compare(a.steps[i].name, b.steps[i].name); c != 0 {
				return c
			}
		}
		return cmp.Compare(len(a.steps), len(b.steps))
	})
	for _, s := range settings {
		d.set(root, s)
	}
}

// set puts one variable's value into the node tree, making the mappings and
// list entries on its way.
func (d *yamlDecoder) set(root *yaml.Node, s setting) {
	where := "environment variable " + s.name
	n, path := root, ""
	for i, st := range s.steps {
		last := i == len(s.steps)-1
		if st.index >= 0 {
			if isNull(n) {
				*n = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			}
			if n.Kind != yaml.SequenceNode {
				d.problems.decodeErr(path, where, fmt.Errorf("is not a list in the file, so %s cannot set an entry of it", s.name))
				return
			}
			switch l := len(n.Content); {
			case st.index < l:
				n = deref(n.Content[st.index])
			case st.index == l:
				c := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
				n.Content = append(n.Content, c)
				n = c
			default:
				d.problems.decodeErr(fmt.Sprintf("%s[%d]", path, st.index), where,
					fmt.Errorf("is past the end: %s has %d %s, so a new entry takes index %d", path, l, plural(l, "entry", "entries"), l))
				return
			}
			path = fmt.Sprintf("%s[%d]", path, st.index)
			continue
		}
		if st.via != st.name {
			d.warn(fmt.Sprintf("environment variable %s names the deprecated config key %s: call it %s", s.name, join(path, st.via), join(path, st.name)))
		}
		path = join(path, st.name)
		if isNull(n) {
			*n = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		}
		if n.Kind != yaml.MappingNode {
			d.problems.decodeErr(path, where, fmt.Errorf("is inside a value that is not keys and values in the file, so %s cannot set it", s.name))
			return
		}
		j := -1
		for k := 0; k+1 < len(n.Content); k += 2 {
			if slices.Contains(st.names, n.Content[k].Value) {
				j = k
			}
		}
		if last {
			v, err := d.envValue(s)
			if err != nil {
				d.problems.decodeErr(path, where, err)
				return
			}
			if j >= 0 {
				n.Content[j+1] = v
			} else {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: st.name}, v)
			}
			return
		}
		if j < 0 {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: st.name},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"})
			j = len(n.Content) - 2
		}
		n = deref(n.Content[j+1])
	}
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// envValue makes the node for a variable's value: a list of strings from a
// comma-separated value, a boolean as strconv.ParseBool reads it, a string
// as it is, anything else as a YAML plain scalar.
func (d *yamlDecoder) envValue(s setting) (*yaml.Node, error) {
	var n *yaml.Node
	t := s.leaf
	switch {
	case reflect.PointerTo(t).Implements(textUnmarshaler) || t.Kind() == reflect.String:
		n = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s.value}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		n = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, p := range strings.Split(s.value, ",") {
			if p = strings.TrimSpace(p); p != "" {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p})
			}
		}
	case t.Kind() == reflect.Map:
		return nil, fmt.Errorf("cannot be set from the environment (%s); set it in the file", s.name)
	case t.Kind() == reflect.Bool:
		n = &yaml.Node{Kind: yaml.ScalarNode, Value: s.value}
		if b, err := strconv.ParseBool(s.value); err == nil {
			n.Tag, n.Value = "!!bool", strconv.FormatBool(b)
		}
	default:
		n = &yaml.Node{Kind: yaml.ScalarNode, Value: s.value}
	}
	d.envVar[n] = s.name
	return n, nil
}
