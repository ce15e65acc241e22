// Package config loads the YAML files the gdpnet daemons are configured with.
//
// Each daemon owns its Config type, whose zero value works; Load fills one in
// from a file and is strict about it: a key the type does not know is an
// error that names the key and its line, so a misspelt setting is never
// silently ignored. Duration reads "5s"-style values.
package config
