package gateway_test

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gdpnet/gdpnet/gateway"
)

// TestPythonExample runs examples/gateway.py (standard library only)
// against a gateway on its unix socket: KV time travel, a file's old
// version, a WebSocket subscription. Skipped without python3.
func TestPythonExample(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	_, g, _ := setup(t, gateway.Config{})
	sock := filepath.Join(t.TempDir(), "gateway.sock")
	ln, err := gateway.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: g.srv.Handler(false)}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "../examples/gateway.py", "--socket", sock, "--owner", "alice",
		"--servers="+strings.Join(g.servers, ",")).CombinedOutput() // "=": a name may begin with "-"
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("examples/gateway.py: %v", err)
	}
	for _, want := range []string{"kv: colour is green now, was red at seqno", "file: notes.txt has 2 versions", "subscription: 5 records, seqnos [1, 2, 3, 4, 5]", "\nok\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestCurlWalkthrough runs examples/curl.sh against a gateway on its unix
// socket. Skipped without curl or python3 (the script reads fields with it).
func TestCurlWalkthrough(t *testing.T) {
	for _, tool := range []string{"curl", "python3", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip("no " + tool)
		}
	}
	_, g, _ := setup(t, gateway.Config{})
	sock := filepath.Join(t.TempDir(), "gateway.sock")
	ln, err := gateway.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: g.srv.Handler(false)}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "../examples/curl.sh")
	cmd.Env = append(cmd.Environ(), "SOCK="+sock, "OWNER=alice", `SERVERS="`+g.servers[0]+`","`+g.servers[1]+`"`)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("examples/curl.sh: %v", err)
	}
	s := string(out)
	for _, want := range []string{`"value":"green"`, `"value":"red"`, "first\n", `"reason":"malformed_json"`, `"data":"three"`,
		`"data":"dear diary","data_base64":"ZGVhciBkaWFyeQ==","epoch":1`, `"key_seqno":1`} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
