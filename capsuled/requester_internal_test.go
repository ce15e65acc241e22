package capsuled

import (
	"testing"

	"github.com/gdpnet/gdpnet/certs"
	"github.com/gdpnet/gdpnet/client"
	"github.com/gdpnet/gdpnet/pdu"
)

// TestSourceOfSession (review7): a requester proof's source metadata
// (wire.Requester key 2) proves only a session name of the credentials'
// node, and with it the CREATE may come from either of the node's two
// names — the client picks the proof before it sends, and its source
// moves between its own name and its session name while a re-attachment
// re-advertises the session. Any other capsule name of the node's key, a
// session marked for another node, or a third source name does not prove.
func TestSourceOfSession(t *testing.T) {
	id, err := certs.NewIdentity(certs.KindClient, "member")
	if err != nil {
		t.Fatal(err)
	}
	capsuleOf := func(marker string) *certs.Metadata {
		t.Helper()
		m, err := certs.NewCapsule(id.Key, id.Public(), "a capsule of the member's key")
		if err != nil {
			t.Fatal(err)
		}
		if marker != "" {
			m.Extra = map[string]string{client.SessionExtra: marker}
		}
		return m
	}
	session := capsuleOf(id.Name.String())
	hosted := capsuleOf("")
	elsewhere := capsuleOf(pdu.Name{7}.String())
	for _, tt := range []struct {
		name   string
		source *certs.Metadata
		src    pdu.Name
		ok     bool
	}{
		{"own name, no key 2", nil, id.Name, true},
		{"session name with its metadata", session, session.Name(), true},
		{"own name with the session's metadata (sent after the session was dropped)", session, id.Name, true},
		{"session name without key 2", nil, session.Name(), false},
		{"another name with the session's metadata", session, pdu.Name{9}, false},
		{"a capsule name of the key, not a session", hosted, hosted.Name(), false},
		{"own name with a capsule of the key that is not a session", hosted, id.Name, false},
		{"a session marked for another node", elsewhere, elsewhere.Name(), false},
	} {
		var b []byte
		if tt.source != nil {
			b = tt.source.Marshal()
		}
		if err := sourceOf(id.Meta, b, tt.src); (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
