//go:build race

package handoffd

// Under -race compression runs 10–50× slower, and the adapter's profile of
// every mode (off the critical path) can outlast a short transfer: the
// adaptation tests then make their transfers last raceSlow× longer.
const raceSlow = 4
