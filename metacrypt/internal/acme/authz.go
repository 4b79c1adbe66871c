package acme

import (
	"context"
	"time"
)

// viewAuthz is an authorization as of now: pending past its expiry is
// expired.
func (s *Service) viewAuthz(a Authz) Authz {
	if a.Status == StatusPending && !s.now().Before(a.Expires) {
		a.Status = StatusExpired
	}
	return a
}

func (s *Service) ownAuthz(ctx context.Context, st Store, a Account, id string) (Authz, error) {
	az, err := st.Authz(ctx, id)
	if err != nil {
		return Authz{}, notFound(err, "authorization")
	}
	if az.Account != a.ID {
		return Authz{}, NewProblem(ErrUnauthorized, "the authorization belongs to another account")
	}
	return s.viewAuthz(az), nil
}

// Authz is one of the account's authorizations.
func (s *Service) Authz(ctx context.Context, mount string, a Account, id string) (Authz, error) {
	st, err := s.store(ctx, mount)
	if err != nil {
		return Authz{}, err
	}
	return s.ownAuthz(ctx, st, a, id)
}

// DeactivateAuthz deactivates a pending or valid authorization (RFC 8555
// §7.5.2); its order becomes invalid.
func (s *Service) DeactivateAuthz(ctx context.Context, mount string, a Account, id string) (Authz, error) {
	st, err := s.store(ctx, mount)
	if err != nil {
		return Authz{}, err
	}
	az, err := s.ownAuthz(ctx, st, a, id)
	if err != nil {
		return Authz{}, err
	}
	unlock := s.locks.lock("order/" + mount + "/" + az.Order)
	defer unlock()
	if az, err = s.ownAuthz(ctx, st, a, id); err != nil {
		return Authz{}, err
	}
	if az.Status != StatusPending && az.Status != StatusValid {
		return Authz{}, NewProblem(ErrMalformed, "the authorization is %s", az.Status)
	}
	az.Status = StatusDeactivated
	if err := st.PutAuthz(ctx, az); err != nil {
		return Authz{}, err
	}
	if err := st.DeleteJob(ctx, az.ID); err != nil {
		return Authz{}, err
	}
	return az, s.updateOrder(ctx, st, az.Order)
}

// RespondChallenge is the client's "ready" for a challenge (RFC 8555
// §7.5.1): a pending challenge of a pending authorization becomes
// processing and a validation job is queued; the queue validates it, not
// this request's goroutine. While the queue runs, the answer waits up to
// RespondWait for the first attempt's outcome, so a client whose target
// answers at once sees the challenge valid (or invalid) in this answer
// and on its first poll instead of after a Retry-After second; a slower
// validation is answered as processing, as before. Anything else is
// answered as it stands (a repeated POST, or one for another challenge of
// an authorization already being validated).
func (s *Service) RespondChallenge(ctx context.Context, mount string, a Account, authzID string, t ChallengeType) (Authz, Challenge, error) {
	az, ch, settled, err := s.queueChallenge(ctx, mount, a, authzID, t)
	if err != nil || settled == nil {
		return az, ch, err
	}
	defer s.unwatch(mount, authzID, settled)
	timer := time.NewTimer(RespondWait)
	defer timer.Stop()
	select {
	case <-settled:
	case <-timer.C:
		return az, ch, nil
	case <-ctx.Done():
		return az, ch, nil
	}
	st, err := s.store(ctx, mount)
	if err != nil {
		return az, ch, nil //nolint:nilerr // the challenge is queued; answer it as queued
	}
	now, err := s.ownAuthz(ctx, st, a, authzID)
	if err != nil {
		return az, ch, nil //nolint:nilerr // as above
	}
	if c, ok := now.Challenge(t); ok {
		return now, *c, nil
	}
	return az, ch, nil
}

// queueChallenge does RespondChallenge's work under the order's lock. When
// it queued a job and the queue is running, settled is closed once the
// job's first attempt is recorded.
func (s *Service) queueChallenge(ctx context.Context, mount string, a Account, authzID string, t ChallengeType) (Authz, Challenge, chan struct{}, error) {
	st, err := s.store(ctx, mount)
	if err != nil {
		return Authz{}, Challenge{}, nil, err
	}
	az, err := s.ownAuthz(ctx, st, a, authzID)
	if err != nil {
		return Authz{}, Challenge{}, nil, err
	}
	unlock := s.locks.lock("order/" + mount + "/" + az.Order)
	defer unlock()
	if az, err = s.ownAuthz(ctx, st, a, authzID); err != nil {
		return Authz{}, Challenge{}, nil, err
	}
	ch, ok := az.Challenge(t)
	if !ok {
		return Authz{}, Challenge{}, nil, NewProblem(ErrMalformed, "no such challenge").withStatus(404)
	}
	if az.Status != StatusPending || ch.Status != StatusPending {
		return az, *ch, nil, nil
	}
	for _, other := range az.Challenges {
		if other.Status == StatusProcessing {
			return az, *ch, nil, nil
		}
	}
	ch.Status = StatusProcessing
	now := s.now()
	job := Job{Authz: az.ID, Type: t, NextAt: now, Order: az.Order, CreatedAt: now}
	if err := st.PutJob(ctx, job); err != nil {
		return Authz{}, Challenge{}, nil, err
	}
	if err := st.PutAuthz(ctx, az); err != nil {
		return Authz{}, Challenge{}, nil, err
	}
	var settled chan struct{}
	if s.queueRunning.Load() {
		settled = s.watch(mount, az.ID)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return az, *ch, settled, nil
}

// updateOrder recomputes a pending order's status from its
// authorizations: invalid when one is invalid, deactivated or expired;
// ready when all are valid. The caller holds the order's lock.
func (s *Service) updateOrder(ctx context.Context, st Store, id string) error {
	o, err := st.Order(ctx, id)
	if err != nil {
		return err
	}
	if o.Status != StatusPending {
		return nil
	}
	valid := 0
	for _, aid := range o.Authzs {
		az, err := st.Authz(ctx, aid)
		if err != nil {
			return err
		}
		az = s.viewAuthz(az)
		switch az.Status {
		case StatusValid:
			valid++
		case StatusPending:
		default:
			o.Status = StatusInvalid
			o.Error = NewProblem(ErrUnauthorized, "the authorization of %s is %s", az.Identifier, az.Status)
			for _, c := range az.Challenges {
				if c.Error != nil {
					p := *c.Error
					p.Identifier = &Identifier{Type: az.Identifier.Type, Value: az.Identifier.Value}
					o.Error = &p
				}
			}
			return st.PutOrder(ctx, o)
		}
	}
	if valid == len(o.Authzs) {
		o.Status = StatusReady
		return st.PutOrder(ctx, o)
	}
	return nil
}
