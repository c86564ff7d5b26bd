package tasks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

func init() { Register(KindFile, rebuildFile) }

// rebuildFile loads a runbook file run again, with the variables and
// --limit it was started with, refusing a file that changed since
// (unless --force): its steps may no longer be the journal's.
func rebuildFile(_ context.Context, r *Rebuild) (*Runbook, error) {
	s := r.Run
	file := s.Params["file"]
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &RefusedError{Reason: fmt.Sprintf("runbook %s of run %s: %v", file, s.ID, err), Err: err}
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != s.Params["sha256"] && !r.Force {
		return nil, Refusef("runbook %s changed since run %s started: check it, then use --force", file, s.ID)
	}
	vars := map[string]string{}
	for k, v := range s.Params {
		if name, ok := strings.CutPrefix(k, "var."); ok {
			vars[name] = v
		}
	}
	limit := r.Limit
	if limit == "" {
		limit = s.Params["limit"]
	}
	rb, err := ParseRunbook(file, data, r.Inventory, LoadOptions{Vars: vars, Getenv: r.Getenv, Limit: limit})
	if err != nil {
		return nil, err
	}
	rb.Params["file"] = file
	return rb, nil
}
