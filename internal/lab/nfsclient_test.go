package lab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The mount helper's copy of a file survives a try that failed mid-read.
// libnfs's nfs-cp refuses a destination that exists ("Failed to open"),
// and a failed try leaves one: the real cluster's remount after a
// failover once failed every further try that way, for 30 s. Here a
// stand-in nfs-cp does what the real one does (refuses an existing
// destination) and fails its first call after writing part of the file.
func TestNFSClientRetryStartsEachCopyAfresh(t *testing.T) {
	dir := t.TempDir()
	fake := `#!/bin/sh
if [ -e "$2" ]; then echo "Failed to open $2" >&2; exit 10; fi
echo part > "$2"
if [ ! -e "$FIRST_DONE" ]; then touch "$FIRST_DONE"; echo "Failed to read from source file" >&2; exit 10; fi
echo whole > "$2"
`
	if err := os.WriteFile(filepath.Join(dir, "nfs-cp"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "blob")
	cmd := ToolCmd(context.Background(), "sh", "-c", nfsRetryShell+`retry fetch "nfs://127.0.0.1/data/services/blob?version=4" "$1"`, "-", dst)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "FIRST_DONE="+filepath.Join(dir, "first"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the copy failed for good after one failed try: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(dst); strings.TrimSpace(string(b)) != "whole" {
		t.Fatalf("copied %q, want the whole file", b)
	}
	if !strings.Contains(string(out), "try 1 failed") || strings.Contains(string(out), "try 2 failed") {
		t.Errorf("want one failed try, then the copy:\n%s", out)
	}
}
