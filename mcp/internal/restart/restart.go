// Package restart decides whether a dead container may be restarted: its
// restart policy, and a tracker of recent restarts that stops a restart
// storm (a container restarted MaxRestarts times within Window is
// flapping and is left down until an operator acts). It imports nothing
// else of MCP.
package restart

import (
	"sync"
	"time"
)

// Policies (a component's restart field).
const (
	No            = "no"
	OnFailure     = "on-failure"
	Always        = "always"
	UnlessStopped = "unless-stopped"
)

// Wanted reports whether policy restarts a container that exited with
// code.
func Wanted(policy string, code int) bool {
	switch policy {
	case Always, UnlessStopped, "":
		return true
	case OnFailure:
		return code != 0
	}
	return false
}

// Tracker counts restarts per key (service/component).
type Tracker struct {
	// MaxRestarts within Window make a key flapping.
	MaxRestarts int
	Window      time.Duration

	mu       sync.Mutex
	history  map[string][]time.Time
	flapping map[string]bool
}

// NewTracker returns a tracker.
func NewTracker(maxRestarts int, window time.Duration) *Tracker {
	return &Tracker{MaxRestarts: maxRestarts, Window: window, history: map[string][]time.Time{}, flapping: map[string]bool{}}
}

// Allow records a restart of key at now and reports whether it may go
// ahead; the first refusal also reports that key just became flapping.
func (t *Tracker) Allow(key string, now time.Time) (ok, becameFlapping bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.flapping[key] {
		return false, false
	}
	var recent []time.Time
	for _, at := range t.history[key] {
		if now.Sub(at) < t.Window {
			recent = append(recent, at)
		}
	}
	if len(recent) >= t.MaxRestarts {
		t.flapping[key] = true
		t.history[key] = recent
		return false, true
	}
	t.history[key] = append(recent, now)
	return true, false
}

// Flapping reports whether key is flapping.
func (t *Tracker) Flapping(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.flapping[key]
}

// Reset forgets key's history (an operator started, restarted or
// redeployed it).
func (t *Tracker) Reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.history, key)
	delete(t.flapping, key)
}

// ResetPrefix forgets every key starting with prefix ("svc/").
func (t *Tracker) ResetPrefix(prefix string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.history {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			delete(t.history, k)
		}
	}
	for k := range t.flapping {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			delete(t.flapping, k)
		}
	}
}
