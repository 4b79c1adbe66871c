package logging

import (
	"bytes"
	"strings"
	"testing"
)

func TestLevels(t *testing.T) {
	for _, tc := range []struct {
		level      string
		debugShown bool
		infoShown  bool
		wantErr    bool
	}{
		{"", false, true, false},
		{"debug", true, true, false},
		{"INFO", false, true, false},
		{"warn", false, false, false},
		{"error", false, false, false},
		{"verbose", false, false, true},
	} {
		var buf bytes.Buffer
		l, err := New(Config{Level: tc.level}, &buf)
		if tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), tc.level) {
				t.Fatalf("level %q: want error naming it, got %v", tc.level, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("level %q: %v", tc.level, err)
		}
		l.Debug("dbg")
		l.Info("inf")
		out := buf.String()
		if strings.Contains(out, "dbg") != tc.debugShown || strings.Contains(out, "inf") != tc.infoShown {
			t.Errorf("level %q: output %q", tc.level, out)
		}
	}
}

func TestSecretsRedacted(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		l, err := New(Config{Format: format}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		l.Info("login", "username", "kyle", "password", "hunter2", "Bearer_Token", "eyJabc", "session_cookie", "c00kie")
		out := buf.String()
		for _, secret := range []string{"hunter2", "eyJabc", "c00kie"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s: secret %q leaked: %s", format, secret, out)
			}
		}
		if !strings.Contains(out, "kyle") || !strings.Contains(out, Redacted) {
			t.Errorf("%s: expected username and redaction marker: %s", format, out)
		}
	}
	if _, err := New(Config{Format: "xml"}, &bytes.Buffer{}); err == nil {
		t.Fatal("unknown format accepted")
	}
}
