//go:build !race

package tunnel

// raceSlow is 1 without -race (see race_on_test.go).
const raceSlow = 1
