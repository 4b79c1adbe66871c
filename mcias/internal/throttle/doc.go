// Package throttle limits failed login attempts per key (an account name or
// a source IP) within a sliding window. An attempt reserves its slot before
// the password is checked, so a burst of parallel guesses cannot all slip
// past the limit before the first failure is counted; it ends Failed,
// Succeeded (the only outcome that clears a count) or Withdrawn (nothing
// was settled: the reservation is simply released).
package throttle
