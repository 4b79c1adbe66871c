package seal

import (
	"bytes"
	"testing"
	"time"
)

func TestKEK(t *testing.T) {
	p := Params{MemoryKiB: 8 * 1024, Iterations: 1, Parallelism: 1}
	salt, err := NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	a, err := KEK([]byte("correct horse battery"), salt, p)
	if err != nil || len(a) != KeySize {
		t.Fatalf("KEK: %d bytes, %v", len(a), err)
	}
	b, _ := KEK([]byte("correct horse battery"), salt, p)
	c, _ := KEK([]byte("correct horse batterz"), salt, p)
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatal("KEK not deterministic per password")
	}
	if _, err := KEK([]byte("x"), salt[:4], p); err == nil {
		t.Fatal("short salt accepted")
	}
	if _, err := KEK([]byte("x"), salt, Params{MemoryKiB: 1, Iterations: 1, Parallelism: 1}); err == nil {
		t.Fatal("cheap params accepted")
	}
	if DefaultParams.Validate() != nil || (Params{}).WithDefaults() != DefaultParams {
		t.Fatal("defaults")
	}
}

func TestThrottle(t *testing.T) {
	th := DefaultThrottle
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		failures int
		ago      time.Duration
		want     time.Duration
	}{
		{0, 0, 0},
		{2, 0, 0},
		{3, 0, time.Second},
		{4, 0, 2 * time.Second},
		{5, time.Second, 3 * time.Second},
		{6, 10 * time.Second, 0},
		{40, 0, 15 * time.Minute},
	}
	for _, c := range cases {
		if got := th.Wait(c.failures, now.Add(-c.ago), now); got != c.want {
			t.Errorf("Wait(%d, -%s) = %s, want %s", c.failures, c.ago, got, c.want)
		}
	}
	if CheckNewPassword([]byte("short")) == nil || CheckNewPassword([]byte("long enough pw")) != nil {
		t.Fatal("CheckNewPassword")
	}
}
