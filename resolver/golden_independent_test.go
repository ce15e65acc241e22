package resolver

import (
	"os/exec"
	"testing"
)

// TestGoldenIndependent runs testdata/check_records.py, which rebuilds
// every resolver golden file (records, tombstone, border record, record
// set, membership proof) from the fixture's seeds and labels with its own
// CBOR encoder, COSE certificates and pure-Python Ed25519 — standard
// library only — and compares them byte for byte, then decodes each file
// strictly and checks it field by field. The golden files are written by
// the code under test (-update); this is the check that does not trust it.
func TestGoldenIndependent(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	out, err := exec.Command(py, "testdata/check_records.py").CombinedOutput()
	if err != nil {
		t.Fatalf("check_records.py: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
