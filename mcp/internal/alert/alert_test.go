package alert

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWebhookAndCommand(t *testing.T) {
	got := make(chan Payload, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		var p Payload
		_ = json.NewDecoder(r.Body).Decode(&p)
		got <- p
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "alert")
	var logs strings.Builder
	s := &Sink{Node: "n1", Logger: slog.New(slog.NewTextHandler(&logs, nil)), Webhook: srv.URL,
		Command: []string{"sh", "-c", `printf '%s %s %s' "$MCP_ALERT_SERVICE" "$MCP_ALERT_KIND" "$MCP_ALERT_MESSAGE" > ` + out}}
	s.Send(context.Background(), "hello", Flapping, "hello-web-1 restarted 5 times")
	select {
	case p := <-got:
		if p.Node != "n1" || p.Service != "hello" || p.Kind != Flapping || p.Message != "hello-web-1 restarted 5 times" {
			t.Fatalf("%+v", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook call")
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(out); err == nil && string(b) == "hello flapping hello-web-1 restarted 5 times" {
			break
		}
	}
	if b, _ := os.ReadFile(out); string(b) != "hello flapping hello-web-1 restarted 5 times" {
		t.Fatalf("command wrote %q", b)
	}
	if !strings.Contains(logs.String(), "msg=alert kind=flapping service=hello") {
		t.Fatalf("log line: %s", logs.String())
	}
}
