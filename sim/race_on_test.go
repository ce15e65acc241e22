//go:build race

package sim

// Under -race the emulator and the router code run 5–10× slower, and on a
// loaded machine a starved process drops and delays packets of its own.
// The fidelity tests then offer less traffic (the same number of samples
// over a longer time, or a slower link) so that what they measure is the
// emulated link, not the race detector.
const raceSlow = 4
