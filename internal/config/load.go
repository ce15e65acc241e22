package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// ErrUnknownKey is wrapped by Load's error when the file holds a key that the
// destination type has no field for.
var ErrUnknownKey = errors.New("unknown key")

// Load reads the YAML file at path into dst, a non-nil pointer (usually to a
// struct holding the defaults). An empty file leaves dst as it is. Errors
// name the file; a missing file's error wraps fs.ErrNotExist; every unknown
// key is reported with its line and the error wraps ErrUnknownKey.
func Load(path string, dst any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("config %s: %w", path, fs.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := decode(b, dst); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// decode is Load without the file: strict YAML into dst.
func decode(b []byte, dst any) error {
	if v := reflect.ValueOf(dst); v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("destination must be a non-nil pointer, not %T", dst)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err := dec.Decode(dst)
	if errors.Is(err, io.EOF) {
		return nil // empty file (or only comments): keep the defaults
	}
	if err != nil {
		return tidy(err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}

var unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type \S+$`)

// tidy rewrites yaml.v3's list of field errors into one line per problem,
// saying "unknown key" in the file's terms rather than the Go type's.
func tidy(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	unknown := false
	for i, m := range te.Errors {
		if s := unknownField.FindStringSubmatch(m); s != nil {
			m = fmt.Sprintf("line %s: %s %q", s[1], ErrUnknownKey, s[2])
			unknown = true
		}
		msgs[i] = m
	}
	msg := strings.Join(msgs, "; ")
	if unknown {
		return &keyError{msg}
	}
	return errors.New(msg)
}

type keyError struct{ msg string }

func (e *keyError) Error() string        { return e.msg }
func (e *keyError) Is(target error) bool { return target == ErrUnknownKey }
