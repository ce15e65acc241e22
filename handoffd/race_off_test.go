//go:build !race

package handoffd

// raceSlow stretches the adaptation tests' transfers (see race_on_test.go).
const raceSlow = 1
