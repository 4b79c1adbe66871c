// Package password hashes and verifies account passwords with Argon2id,
// stored as PHC strings ($argon2id$v=19$m=…,t=…,p=…$salt$hash) so the
// parameters travel with each hash and can be raised later (NeedsRehash).
// Equalizer lets the login path spend the same effort on an unknown user as
// on a wrong password, so response time does not reveal which accounts exist.
// Gate bounds how many of these memory-hungry computations run at once.
package password
