//go:build !linux

package replicate

// promoteMount: promote itself is Linux only (subvol_other.go).
func promoteMount(string) error { return nil }
