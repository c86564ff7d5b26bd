package nomadtest

import "testing"

// The fake unit tests use answers as the real Nomad does (e2e runs the
// same contract on the lab's cluster).
func TestFakeKeepsTheContract(t *testing.T) {
	TestJobs(t, NewFake().Harness())
}
