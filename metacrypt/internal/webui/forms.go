package webui

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A form that shows a secret once (a private key, an EAB HMAC key)
// cannot redirect after the POST without keeping the secret, which the
// UI does not. Its POST answer is the page, so a reload or a double click
// would post it again and make a second key. Each such form carries a
// one-time id: its issue time and 128 random bits. An id is taken before
// the API call, given back when the call fails, and refused when taken or
// older than formTTL, so the taken ids need keeping for formTTL only.
const (
	formTTL  = time.Hour
	maxForms = 100_000
)

// submissions are the taken form ids.
type submissions struct {
	mu    sync.Mutex
	taken map[string]time.Time // id → its issue time
	now   func() time.Time
}

func newSubmissions() *submissions {
	return &submissions{taken: map[string]time.Time{}, now: time.Now}
}

// newID makes a form id.
func (s *submissions) newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return strconv.FormatInt(s.now().Unix(), 36) + "." + base64.RawURLEncoding.EncodeToString(b)
}

// take claims id; false if it is malformed, expired or taken already.
func (s *submissions) take(id string) bool {
	ts, random, ok := strings.Cut(id, ".")
	if !ok || len(random) != 22 {
		return false
	}
	sec, err := strconv.ParseInt(ts, 36, 64)
	if err != nil {
		return false
	}
	issued, now := time.Unix(sec, 0), s.now()
	if now.Sub(issued) > formTTL || issued.After(now.Add(time.Minute)) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.taken[id]; dup {
		return false
	}
	if len(s.taken) >= maxForms {
		for k, t := range s.taken {
			if now.Sub(t) > formTTL {
				delete(s.taken, k)
			}
		}
		if len(s.taken) >= maxForms {
			// Every id is recent: a flood of posts. Refusing keeps the
			// promise (no second key from one form) at the flood's cost.
			return false
		}
	}
	s.taken[id] = issued
	return true
}

// giveBack releases id after a failed call, so the corrected form may be
// sent again.
func (s *submissions) giveBack(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.taken, id)
}
