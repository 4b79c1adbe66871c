package pki

import (
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

func TestParsers(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1d12h": 36 * time.Hour, "720h": 720 * time.Hour, "": 0} {
		if d, err := ParseDuration("ttl", in); err != nil || d != want {
			t.Errorf("ParseDuration(%q) = %s, %v", in, d, err)
		}
	}
	for _, bad := range []string{"soon", "-1h", "0s", "d", "1x"} {
		if _, err := ParseDuration("ttl", bad); apierr.Describe(err).Field != "ttl" {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
	if FormatDuration(90*24*time.Hour) != "90d" || FormatDuration(90*time.Minute) != "1h30m0s" {
		t.Error("FormatDuration")
	}
	for in, want := range map[string]string{"3F:1A": "3f1a", "0x00ff": "ff", " ABC ": "abc"} {
		if s, err := ParseSerial("serial", in); err != nil || s != want {
			t.Errorf("ParseSerial(%q) = %q, %v", in, s, err)
		}
	}
	for _, bad := range []string{"", "zz", "0", "-1"} {
		if _, err := ParseSerial("serial", bad); err == nil {
			t.Errorf("ParseSerial(%q) accepted", bad)
		}
	}
	for in, want := range map[string]Reason{"": Unspecified, "keyCompromise": KeyCompromise, "key_compromise": KeyCompromise, "4": Superseded, "Cessation-Of-Operation": CessationOfOperation} {
		if r, err := ParseReason("reason", in); err != nil || r != want {
			t.Errorf("ParseReason(%q) = %v, %v", in, r, err)
		}
	}
	for _, bad := range []string{"bored", "6", "2"} {
		if _, err := ParseReason("reason", bad); err == nil {
			t.Errorf("ParseReason(%q) accepted", bad)
		}
	}
	if _, err := ParseCAKeyType("key_type", "rsa-2048"); err == nil {
		t.Error("rsa-2048 accepted for a CA")
	}
	if err := ValidateIssuerName("name", "root"); err == nil {
		t.Error("root accepted as an issuer name")
	}
}
