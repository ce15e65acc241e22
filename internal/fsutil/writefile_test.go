package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name      string
		existing  []byte // content already at path; nil for none
		mode      os.FileMode
		overwrite bool
		wantErr   error
		want      []byte
	}{
		{name: "new file", mode: 0o600, want: []byte("new")},
		{name: "new file overwrite allowed", mode: 0o644, overwrite: true, want: []byte("new")},
		{name: "replace", existing: []byte("old"), mode: 0o640, overwrite: true, want: []byte("new")},
		{name: "refuse to replace", existing: []byte("old"), mode: 0o600, wantErr: fs.ErrExist, want: []byte("old")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tt.existing != nil {
				if err := os.WriteFile(path, tt.existing, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := WriteFile(path, []byte("new"), tt.mode, tt.overwrite)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("WriteFile error = %v, want %v", err, tt.wantErr)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != string(tt.want) {
				t.Fatalf("content = %q, %v; want %q", got, err, tt.want)
			}
			if tt.wantErr == nil {
				st, err := os.Stat(path)
				if err != nil || st.Mode().Perm() != tt.mode {
					t.Fatalf("mode = %v, %v; want %v", st.Mode().Perm(), err, tt.mode)
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil || len(entries) != 1 {
				t.Fatalf("directory holds %d entries (%v); want only the file, no temporary left", len(entries), err)
			}
		})
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "f")
	if err := WriteFile(path, []byte("x"), 0o600, true); err == nil {
		t.Fatal("WriteFile into a missing directory succeeded")
	}
}
