package resolver

import (
	"os"
	"strings"
	"testing"
)

// TestProtocolDocVector checks that the bytes docs/PROTOCOL.md §6.6 prints
// are testdata/self.hex, so the spec and the code cannot drift apart.
func TestProtocolDocVector(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Skipf("no docs: %v", err)
	}
	s := string(doc)
	i := strings.Index(s, "## 6. Location records")
	if i < 0 {
		t.Fatal("PROTOCOL.md has no section 6")
	}
	s = s[i:]
	j := strings.Index(s, "Full bytes:\n\n```\n")
	if j < 0 {
		t.Fatal("section 6 has no full-bytes block")
	}
	s = s[j+len("Full bytes:\n\n```\n"):]
	block := strings.ReplaceAll(s[:strings.Index(s, "```")], "\n", "")
	want, err := os.ReadFile("testdata/self.hex")
	if err != nil {
		t.Fatal(err)
	}
	if block != strings.TrimSpace(string(want)) {
		t.Fatal("PROTOCOL.md §6.6 bytes differ from testdata/self.hex")
	}
}
