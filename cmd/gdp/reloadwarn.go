package main

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"go.uber.org/zap"
	"gopkg.in/yaml.v3"
)

// restartOnlyChanges lists the settings (dotted YAML paths, as in the
// file) whose values differ between running, the configuration the daemon
// started with, and next, the file a reload just read, leaving out those a
// reload puts in force: a path in reloaded, or below one. A list is one
// setting. A configuration that cannot be marshalled is reported as one
// entry saying so, never as no change.
func restartOnlyChanges(running, next any, reloaded ...string) []string {
	a, errA := flatYAML(running)
	b, errB := flatYAML(next)
	if errA != nil || errB != nil {
		return []string{fmt.Sprintf("(could not compare: %v)", firstErr(errA, errB))}
	}
	var out []string
	for k := range a {
		if _, ok := b[k]; !ok {
			b[k] = nil
		}
	}
	for k, v := range b {
		if reflect.DeepEqual(a[k], v) || underAny(k, reloaded) {
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func underAny(path string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return path == p || strings.HasPrefix(path, p+".") })
}

// flatYAML marshals v as its YAML file would read and flattens the
// mappings into dotted paths; sequences and scalars are leaves.
func flatYAML(v any) (map[string]any, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		return nil, err
	}
	out := map[string]any{}
	var walk func(prefix string, n any)
	walk = func(prefix string, n any) {
		m, ok := n.(map[string]any)
		if !ok {
			out[prefix] = n
			return
		}
		for k, v := range m {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, v)
		}
	}
	walk("", tree)
	return out, nil
}

// warnRestartOnly logs, after a reload that put the rest in force, the
// settings of the re-read file that differ from the ones the daemon runs
// with and that only a restart applies: one WARN naming them, so that an
// operator who edited a limit and reloaded does not believe it in force.
// unit is the daemon's systemd unit (deploy/*.service), empty when it has
// none.
func warnRestartOnly(log *zap.Logger, unit string, running, next any, reloaded ...string) {
	changed := restartOnlyChanges(running, next, reloaded...)
	if len(changed) == 0 {
		return
	}
	how := "restart the daemon"
	if unit != "" {
		how += " (systemctl restart " + unit + ")"
	}
	log.Warn("reload: settings changed in the config file are not in force until a restart; the daemon runs with their old values",
		zap.Strings("settings", changed),
		zap.String("fix", how+" to apply them, or put the old values back"))
}
