package pdu

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestProtocolDoc checks that docs/PROTOCOL.md §1 quotes every golden vector
// with the same bytes as testdata/vectors.txt, so the spec and the tests
// cannot drift apart.
func TestProtocolDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if os.IsNotExist(err) {
		t.Skip("docs/PROTOCOL.md not present")
	}
	if err != nil {
		t.Fatal(err)
	}
	sec := string(doc)
	start := strings.Index(sec, "## 1. PDU header")
	end := strings.Index(sec, "\n## 2.")
	if start < 0 || end < start {
		t.Fatal("docs/PROTOCOL.md: no section 1")
	}
	sec = sec[start:end]
	for _, v := range loadVectors(t) {
		name := v.get(t, "name")
		t.Run(name, func(t *testing.T) {
			at := strings.Index(sec, "**`"+name+"`**")
			if at < 0 {
				t.Fatalf("§1 does not quote vector %s", name)
			}
			rest := sec[at:]
			blocks := codeBlocks(rest, 2)
			if len(blocks) == 0 {
				t.Fatalf("no hex block after vector %s", name)
			}
			if got, want := hexBytes(t, blocks[0]), v.hex(t, "hex"); !bytes.Equal(got, want) {
				t.Fatalf("§1 quotes\n%x\nwant\n%x", got, want)
			}
			if _, ok := v.fields["canonical"]; ok {
				if len(blocks) < 2 || !bytes.Equal(hexBytes(t, blocks[1]), v.hex(t, "canonical")) {
					t.Fatalf("§1 does not quote the canonical encoding of %s", name)
				}
			}
		})
	}
}

// codeBlocks returns up to n fenced blocks from the start of s.
func codeBlocks(s string, n int) []string {
	var out []string
	for len(out) < n {
		i := strings.Index(s, "```\n")
		if i < 0 {
			break
		}
		s = s[i+4:]
		j := strings.Index(s, "```")
		if j < 0 {
			break
		}
		out = append(out, s[:j])
		s = s[j+3:]
	}
	return out
}

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	return vector{fields: map[string]string{"hex": s}}.hex(t, "hex")
}
