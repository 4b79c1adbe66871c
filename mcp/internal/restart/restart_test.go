package restart

import (
	"testing"
	"time"
)

func TestWanted(t *testing.T) {
	for _, c := range []struct {
		policy string
		code   int
		want   bool
	}{{Always, 0, true}, {UnlessStopped, 1, true}, {OnFailure, 0, false}, {OnFailure, 2, true}, {No, 1, false}} {
		if Wanted(c.policy, c.code) != c.want {
			t.Errorf("%s/%d", c.policy, c.code)
		}
	}
}

func TestTracker(t *testing.T) {
	tr := NewTracker(3, time.Minute)
	now := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := tr.Allow("svc/web", now.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("restart %d refused", i)
		}
	}
	ok, became := tr.Allow("svc/web", now.Add(5*time.Second))
	if ok || !became || !tr.Flapping("svc/web") {
		t.Fatal("a fourth restart within the window is allowed")
	}
	if ok, became := tr.Allow("svc/web", now.Add(10*time.Minute)); ok || became {
		t.Fatal("flapping lasts until reset")
	}
	// Restarts spread over time never flap.
	for i := range 10 {
		if ok, _ := tr.Allow("other/web", now.Add(time.Duration(i)*time.Minute)); !ok {
			t.Fatalf("spread restart %d refused", i)
		}
	}
	tr.ResetPrefix("svc/")
	if tr.Flapping("svc/web") {
		t.Fatal("reset")
	}
	if ok, _ := tr.Allow("svc/web", now.Add(11*time.Minute)); !ok {
		t.Fatal("refused after reset")
	}
}
