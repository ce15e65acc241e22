//go:build race

package tunnel

// Under -race every handshake and AEAD open costs 5–10× the CPU, and the
// attack tests' flooders run on the same two cores as the node under
// attack: the floods are made raceSlow times thinner (still many times the
// honest traffic) and the honest traffic's deadlines raceSlow times longer,
// so that what the tests measure is the defence, not the race detector.
const raceSlow = 4
