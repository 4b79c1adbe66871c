package acme

import (
	"context"
	"sync"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
)

// The validation queue (OpenBao's lesson, not step-ca's synchronous
// validation): a challenge response stores a Job (and waits a bounded
// moment for its first attempt, RespondChallenge); RunQueue finds due
// jobs in every CA mount's storage and validates them, Config.Workers at
// a time, each attempt bounded by ValidationTimeout. A failed attempt is
// retried after Attempts×ValidationBackoff until ValidationAttempts have
// failed; then the challenge, its authorization and its order are
// invalid. Jobs live in the barrier, so a restart (or a seal) loses none:
// the queue picks them up again once unsealed.

// queueTick is how often the queue looks for due jobs without a nudge.
const queueTick = time.Second

// RunQueue validates queued challenges until ctx ends.
func (s *Service) RunQueue(ctx context.Context) error {
	s.queueRunning.Store(true)
	defer s.queueRunning.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, s.d.Config.Workers)
	tick := time.NewTicker(queueTick)
	defer tick.Stop()
	for {
		s.runDue(ctx, &wg, sem)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-s.wake:
		}
	}
}

// runDue starts every due job it has a worker for.
func (s *Service) runDue(ctx context.Context, wg *sync.WaitGroup, sem chan struct{}) {
	if s.d.Sealed() {
		return
	}
	mounts, err := s.d.Mounts.Names(ctx)
	if err != nil {
		s.d.Logger.Warn("acme: validation queue: list mounts", "error", err)
		return
	}
	now := s.d.Now()
	for _, m := range mounts {
		st, err := s.store(ctx, m)
		if err != nil {
			continue
		}
		jobs, err := st.Jobs(ctx)
		if err != nil {
			if apierr.KindOf(err) != apierr.Unavailable {
				s.d.Logger.Warn("acme: validation queue: list jobs", "mount", m, "error", err)
			}
			continue
		}
		for _, j := range jobs {
			if j.NextAt.After(now) || !s.claim(m, j.Authz) {
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				s.release(m, j.Authz)
				return
			}
			wg.Add(1)
			go func(mount string, j Job) {
				defer wg.Done()
				defer func() { <-sem }()
				defer s.release(mount, j.Authz)
				s.attempt(ctx, mount, j)
			}(m, j)
		}
	}
}

func (s *Service) claim(mount, authz string) bool {
	s.runningMu.Lock()
	defer s.runningMu.Unlock()
	k := mount + "/" + authz
	if s.running[k] {
		return false
	}
	s.running[k] = true
	return true
}

func (s *Service) release(mount, authz string) {
	s.runningMu.Lock()
	defer s.runningMu.Unlock()
	delete(s.running, mount+"/"+authz)
}

// attempt runs one validation attempt of a job and records its outcome.
func (s *Service) attempt(ctx context.Context, mount string, j Job) {
	st, err := s.store(ctx, mount)
	if err != nil {
		return
	}
	az, err := st.Authz(ctx, j.Authz)
	if err != nil {
		if apierr.KindOf(err) == apierr.NotFound {
			_ = st.DeleteJob(ctx, j.Authz)
		}
		return
	}
	ch, ok := az.Challenge(j.Type)
	if !ok || az.Status != StatusPending || ch.Status != StatusProcessing {
		_ = st.DeleteJob(ctx, j.Authz)
		return
	}
	acct, err := st.Account(ctx, az.Account)
	if err != nil {
		return
	}
	key, err := acct.AccountKey()
	if err != nil {
		s.d.Logger.Error("acme: stored account key does not parse", "mount", mount, "account", acct.ID, "error", err)
		return
	}
	var verr error
	if s.viewAuthz(az).Status == StatusExpired {
		verr = NewProblem(ErrMalformed, "the authorization expired before it was validated")
		j.Attempts = s.d.Config.ValidationAttempts - 1
	} else {
		vctx, cancel := context.WithTimeout(ctx, s.d.Config.ValidationTimeout)
		verr = s.d.Validator.Validate(vctx, j.Type, az.Identifier, ch.Token, key.KeyAuthorization(ch.Token))
		cancel()
		if ctx.Err() != nil {
			// Stopping: the job stays queued for the next start.
			return
		}
	}
	s.record(ctx, st, mount, j, verr)
}

// record stores an attempt's outcome under the order's lock, then wakes
// the challenge answers waiting for it.
func (s *Service) record(ctx context.Context, st Store, mount string, j Job, verr error) {
	defer s.notifySettled(mount, j.Authz)
	unlock := s.locks.lock("order/" + mount + "/" + j.Order)
	defer unlock()
	az, err := st.Authz(ctx, j.Authz)
	if err != nil {
		return
	}
	ch, ok := az.Challenge(j.Type)
	if !ok || az.Status != StatusPending || ch.Status != StatusProcessing {
		// Deactivated meanwhile.
		_ = st.DeleteJob(ctx, j.Authz)
		return
	}
	now := s.now()
	log := s.d.Logger.With("mount", mount, "authz", az.ID, "order", az.Order, "challenge", string(j.Type), "identifier", az.Identifier.String())
	if verr == nil {
		ch.Status, ch.Validated, ch.Error = StatusValid, now, nil
		az.Status = StatusValid
		log.Info("acme: challenge valid", "attempt", j.Attempts+1)
	} else {
		p := ProblemOf(verr, ErrIncorrectResponse)
		if p.Identifier == nil {
			p.Identifier = &Identifier{Type: az.Identifier.Type, Value: az.Identifier.Value}
		}
		ch.Error = p
		j.Attempts++
		if j.Attempts < s.d.Config.ValidationAttempts {
			j.NextAt = now.Add(time.Duration(j.Attempts) * s.d.Config.ValidationBackoff)
			log.Info("acme: challenge attempt failed, will retry", "attempt", j.Attempts, "retry_at", j.NextAt, "problem", p.Detail)
			if err := st.PutAuthz(ctx, az); err != nil {
				return
			}
			_ = st.PutJob(ctx, j)
			return
		}
		ch.Status = StatusInvalid
		az.Status = StatusInvalid
		log.Info("acme: challenge invalid", "attempts", j.Attempts, "problem", p.Detail)
	}
	if err := st.PutAuthz(ctx, az); err != nil {
		return
	}
	if err := st.DeleteJob(ctx, j.Authz); err != nil {
		return
	}
	if err := s.updateOrder(ctx, st, az.Order); err != nil {
		log.Warn("acme: order not updated", "error", err)
	}
}

// watch registers a channel closed by the next recorded attempt of authz.
func (s *Service) watch(mount, authz string) chan struct{} {
	c := make(chan struct{})
	k := mount + "/" + authz
	s.settledMu.Lock()
	s.settled[k] = append(s.settled[k], c)
	s.settledMu.Unlock()
	return c
}

// unwatch drops c if it is still registered (the wait gave up).
func (s *Service) unwatch(mount, authz string, c chan struct{}) {
	k := mount + "/" + authz
	s.settledMu.Lock()
	defer s.settledMu.Unlock()
	cs := s.settled[k]
	for i, x := range cs {
		if x == c {
			cs = append(cs[:i], cs[i+1:]...)
			break
		}
	}
	if len(cs) == 0 {
		delete(s.settled, k)
	} else {
		s.settled[k] = cs
	}
}

// notifySettled closes and drops every channel waiting on authz.
func (s *Service) notifySettled(mount, authz string) {
	k := mount + "/" + authz
	s.settledMu.Lock()
	cs := s.settled[k]
	delete(s.settled, k)
	s.settledMu.Unlock()
	for _, c := range cs {
		close(c)
	}
}
