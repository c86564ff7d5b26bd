package tasks

import (
	"strings"
	"testing"
)

// A new-user review: `hoctl check` warned that {{.HostInfo.Address}} was
// pasted unquoted. The fields the inventory holds to one shell word (a
// host's name, its address, its port) are safe as they are, as {{.Host}}
// always was; what the inventory does not restrict (a user, a variable,
// the roles, which print with spaces) still warns.
func TestUnquotedSparesFieldsTheInventoryKeepsOneWord(t *testing.T) {
	fx := newFixture(t)
	rb, err := ParseRunbook("rb.yaml", []byte(`name: q
vars: {app: "x"}
steps:
  - {title: a, hosts: db, run: 'ssh {{ .HostInfo.Address }} -p {{.HostInfo.Port}} {{ .HostInfo.Name }} {{ .Host }}', after: 'ping -c1 {{ with .HostInfo }}{{ .Address }}{{ end }}'}
  - {title: b, hosts: db, run: 'echo {{ .HostInfo.User }} {{ .HostInfo.Roles }} {{ .HostInfo.KnownHosts }} {{ .Vars.app }}'}
`), fx.inv, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var step1, step2 []string
	for _, w := range rb.Warnings {
		switch {
		case strings.HasPrefix(w, "step 1 "):
			step1 = append(step1, w)
		case strings.HasPrefix(w, "step 2 "):
			step2 = append(step2, w)
		}
	}
	if len(step1) != 0 {
		t.Errorf("false warnings: %q", step1)
	}
	for i, want := range []string{"{{.HostInfo.User}}", "{{.HostInfo.Roles}}", "{{.HostInfo.KnownHosts}}", "{{.Vars.app}}"} {
		if i >= len(step2) || !strings.Contains(step2[i], "step 2 run: "+want+" is pasted into the command unquoted") {
			t.Errorf("warning %d: want %s, got %q", i, want, step2)
		}
	}
}
