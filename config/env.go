package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// applyEnv sets every key for which an OUTBOX_CDC_ variable exists.
func applyEnv(cfg *Config, environ []string, warn func(string)) error {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix+"_") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	used := map[string]bool{EnvPrefix + "_CONFIG": true}
	if err := walkEnv(reflect.ValueOf(cfg).Elem(), EnvPrefix, env, used); err != nil {
		return err
	}
	if warn != nil {
		var unknown []string
		for k := range env {
			if !used[k] {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		for _, k := range unknown {
			warn("environment variable " + k + " matches no config key; ignored")
		}
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func walkEnv(v reflect.Value, prefix string, env map[string]string, used map[string]bool) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := strings.Split(f.Tag.Get("yaml"), ",")
		fv := v.Field(i)
		if len(tag) > 1 && tag[1] == "inline" {
			if err := walkEnv(fv, prefix, env, used); err != nil {
				return err
			}
			continue
		}
		if tag[0] == "" || tag[0] == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag[0])
		if err := setEnv(fv, name, env, used); err != nil {
			return err
		}
	}
	return nil
}

func setEnv(fv reflect.Value, name string, env map[string]string, used map[string]bool) error {
	switch {
	case fv.Kind() == reflect.Struct:
		return walkEnv(fv, name, env, used)
	case fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.Struct:
		if !hasPrefix(env, name+"_") {
			return nil
		}
		if fv.IsNil() {
			fv.Set(reflect.New(fv.Type().Elem()))
		}
		return walkEnv(fv.Elem(), name, env, used)
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
		n := fv.Len()
		for k := range env {
			if rest, ok := strings.CutPrefix(k, name+"_"); ok {
				idx, _, _ := strings.Cut(rest, "_")
				if i, err := strconv.Atoi(idx); err == nil && i >= n && i < 1000 {
					n = i + 1
				}
			}
		}
		if n > fv.Len() {
			grown := reflect.MakeSlice(fv.Type(), n, n)
			reflect.Copy(grown, fv)
			fv.Set(grown)
		}
		for i := 0; i < fv.Len(); i++ {
			if err := walkEnv(fv.Index(i), name+"_"+strconv.Itoa(i), env, used); err != nil {
				return err
			}
		}
		return nil
	}
	val, ok := env[name]
	if !ok {
		return nil
	}
	used[name] = true
	if err := setScalar(fv, val); err != nil {
		return fmt.Errorf("config: environment variable %s: %w", name, err)
	}
	return nil
}

func hasPrefix(env map[string]string, p string) bool {
	for k := range env {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

func setScalar(fv reflect.Value, val string) error {
	if fv.Type() == durationType {
		d, err := time.ParseDuration(val)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(val)
	case reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return err
		}
		fv.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			return err
		}
		fv.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return err
		}
		fv.SetFloat(n)
	case reflect.Slice:
		if fv.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("cannot set a list of %s from the environment", fv.Type().Elem())
		}
		var parts []string
		for _, p := range strings.Split(val, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		fv.Set(reflect.ValueOf(parts))
	case reflect.Pointer:
		nv := reflect.New(fv.Type().Elem())
		if err := setScalar(nv.Elem(), val); err != nil {
			return err
		}
		fv.Set(nv)
	default:
		return fmt.Errorf("cannot set a %s from the environment", fv.Type())
	}
	return nil
}
