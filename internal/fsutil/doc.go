// Package fsutil holds the file-system helpers the daemons and the gdp tool
// share. WriteFile is the one way gdpnet writes a file it must not leave
// half-written: keys, metadata, certificates, placements.
package fsutil
