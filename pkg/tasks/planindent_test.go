package tasks

import (
	"strings"
	"testing"
)

// A multi-line command (a YAML block) in the plan keeps to its column:
// every line after the first is indented under the first, so a step's
// undo cannot read as a new step or a new field. A new-user review found
// a multi-line undo: its lines started at the left margin.
func TestPlanIndentsMultiLineCommands(t *testing.T) {
	fx := newFixture(t)
	out := fx.planText(t, `name: m
steps:
  - title: a
    hosts: db
    before: |
      test -d /srv
      test -w /srv
    run: |
      mkdir -p /srv/a
      touch /srv/a/x
    after: |
      test -e /srv/a/x
      echo ok
    undo: |
      rm -f /srv/a/x
      rmdir /srv/a
`)
	for _, want := range []string{
		"     before  test -d /srv\n             test -w /srv\n",
		"     run     mkdir -p /srv/a\n             touch /srv/a/x\n",
		"     after   test -e /srv/a/x\n             echo ok\n",
		"     undo    rm -f /srv/a/x\n             rmdir /srv/a\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plan:\n%s\nwant:\n%s", out, want)
		}
	}
}
