//go:build !race

package sim

// raceSlow divides the offered load of the fidelity tests (see race_on_test.go).
const raceSlow = 1
