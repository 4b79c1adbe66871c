// Package alert sends the agent's alerts: every alert is a structured log
// line (msg=alert with kind, service and message) and a registry row
// (shown by mcp status); optionally also a JSON POST to a webhook and a
// command run with the alert in its environment. Delivery to the webhook
// and the command is asynchronous and bounded, so a slow receiver never
// holds up the monitor.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"time"

	"git.metacircular.net/metacircular/mcp/internal/registry"
)

// Kinds.
const (
	Drift    = "drift"
	Repaired = "repaired"
	Flapping = "flapping"
	Restart  = "restart"
	Boot     = "boot"
	Orphan   = "orphan"
)

// Sink delivers alerts.
type Sink struct {
	Node     string
	Registry *registry.Store
	Logger   *slog.Logger
	// Webhook, when set, receives each alert as a JSON POST.
	Webhook string
	// Command, when set, runs for each alert with MCP_ALERT_NODE,
	// MCP_ALERT_SERVICE, MCP_ALERT_KIND and MCP_ALERT_MESSAGE set.
	Command []string
	// Client posts to the webhook (default: 10 s timeout).
	Client *http.Client
}

// Payload is the webhook's JSON body.
type Payload struct {
	At      time.Time `json:"at"`
	Node    string    `json:"node"`
	Service string    `json:"service"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

// Send records and delivers one alert.
func (s *Sink) Send(ctx context.Context, service, kind, message string) {
	lvl := slog.LevelWarn
	if kind == Repaired {
		lvl = slog.LevelInfo
	}
	s.Logger.Log(ctx, lvl, "alert", "kind", kind, "service", service, "message", message)
	a := registry.Alert{Service: service, Kind: kind, Message: message}
	if s.Registry != nil {
		if stored, err := s.Registry.AddAlert(ctx, a); err == nil {
			a = stored
		}
	}
	if a.At.IsZero() {
		a.At = time.Now().UTC()
	}
	p := Payload{At: a.At, Node: s.Node, Service: service, Kind: kind, Message: message}
	// Delivery outlives the caller's context (a monitor pass) but is
	// bounded by its own timeouts.
	dctx := context.WithoutCancel(ctx)
	if s.Webhook != "" {
		go s.post(dctx, p)
	}
	if len(s.Command) > 0 {
		go s.run(dctx, p)
	}
}

func (s *Sink) post(ctx context.Context, p Payload) {
	b, _ := json.Marshal(p)
	c := s.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Webhook, bytes.NewReader(b))
	if err != nil {
		s.Logger.Error("alert webhook", "error", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		s.Logger.Error("alert webhook", "error", err)
		return
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= 300 {
		s.Logger.Error("alert webhook", "status", resp.Status)
	}
}

func (s *Sink) run(ctx context.Context, p Payload) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Command[0], s.Command[1:]...) //nolint:gosec // the operator's configured alert command
	cmd.Env = append(os.Environ(), "MCP_ALERT_NODE="+p.Node, "MCP_ALERT_SERVICE="+p.Service,
		"MCP_ALERT_KIND="+p.Kind, "MCP_ALERT_MESSAGE="+p.Message, "MCP_ALERT_AT="+p.At.Format(time.RFC3339))
	if out, err := cmd.CombinedOutput(); err != nil {
		s.Logger.Error("alert command", "error", err, "output", string(out))
	}
}
