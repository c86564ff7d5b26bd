package nomad

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/hashicorp/nomad/api"
)

// AutopilotHealth is the servers' autopilot health report. Nomad answers
// an unhealthy cluster with 429 and the report as the body: that is the
// answer (Healthy false, the failure tolerance, each server), not an
// error. Any other failure is the API client's error, as it came.
func AutopilotHealth(ctx context.Context, c *api.Client) (*api.OperatorHealthReply, error) {
	h, _, err := c.Operator().AutopilotServerHealth((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		if report, ok := healthIn(err); ok {
			return report, nil
		}
		return nil, err
	}
	return h, nil
}

// healthIn reads the health report Nomad sends with its 429 out of the
// API client's error, which carries the body as text.
func healthIn(err error) (*api.OperatorHealthReply, bool) {
	const code = "Unexpected response code: 429 ("
	msg := err.Error()
	i := strings.Index(msg, code)
	if i < 0 || !strings.HasSuffix(msg, ")") {
		return nil, false
	}
	body := msg[i+len(code) : len(msg)-1]
	var h api.OperatorHealthReply
	if json.Unmarshal([]byte(body), &h) != nil || len(h.Servers) == 0 {
		return nil, false
	}
	return &h, true
}

// UnhealthyServers names the servers autopilot finds unhealthy.
func UnhealthyServers(h *api.OperatorHealthReply) []string {
	var bad []string
	for _, s := range h.Servers {
		if !s.Healthy {
			bad = append(bad, s.Name)
		}
	}
	return bad
}
