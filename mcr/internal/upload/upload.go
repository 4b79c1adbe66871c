// Package upload runs blob upload sessions: a staging file and a row with
// the bytes received and the hash state over them, so a session survives a
// restart and a client can resume it after a failure (GET status, then
// PATCH from the next byte). Chunks must continue at the session's offset;
// the closing PUT verifies the digest, then the blob enters the content
// store by rename inside the transaction that records it.
package upload

import (
	"context"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"git.metacircular.net/metacircular/mcr/internal/blob"
	"git.metacircular.net/metacircular/mcr/internal/meta"
	"git.metacircular.net/metacircular/mcr/internal/oci"
)

// RangeError is a chunk that does not start at the session's offset
// (416 Requested Range Not Satisfiable); Size is the session's size.
type RangeError struct {
	Size int64
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("chunk does not continue the upload at offset %d", e.Size)
}

// ErrStorageFull means the disk is full (507).
var ErrStorageFull = errors.New("insufficient storage")

// Service runs upload sessions.
type Service struct {
	store *meta.Store
	blobs *blob.Store

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// New returns the upload service over a store and a content store.
func New(store *meta.Store, blobs *blob.Store) *Service {
	return &Service{store: store, blobs: blobs, locks: map[string]*sync.Mutex{}}
}

// lock serializes requests on one session.
func (s *Service) lock(id string) func() {
	s.mu.Lock()
	l, ok := s.locks[id]
	if !ok {
		l = &sync.Mutex{}
		s.locks[id] = l
	}
	s.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		s.mu.Lock()
		delete(s.locks, id)
		s.mu.Unlock()
	}
}

func marshalState(h hash.Hash) ([]byte, error) {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, errors.New("hash state cannot be saved")
	}
	return m.MarshalBinary()
}

func restoreState(alg digest.Algorithm, state []byte) (hash.Hash, error) {
	h := alg.Hash()
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, errors.New("hash state cannot be restored")
	}
	if err := u.UnmarshalBinary(state); err != nil {
		return nil, fmt.Errorf("restore hash state: %w", err)
	}
	return h, nil
}

// Start opens a session in repo hashing with alg.
func (s *Service) Start(ctx context.Context, repo string, alg digest.Algorithm) (meta.Upload, error) {
	id := uuid.NewString()
	f, err := os.OpenFile(s.blobs.UploadPath(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return meta.Upload{}, storageErr(err)
	}
	if err := f.Close(); err != nil {
		return meta.Upload{}, err
	}
	state, err := marshalState(alg.Hash())
	if err != nil {
		return meta.Upload{}, err
	}
	u := meta.Upload{ID: id, Repo: repo, Algorithm: string(alg), HashState: state}
	if err := s.store.CreateUpload(ctx, u); err != nil {
		_ = os.Remove(s.blobs.UploadPath(id))
		return meta.Upload{}, err
	}
	return s.store.GetUpload(ctx, repo, id)
}

// Status returns a session.
func (s *Service) Status(ctx context.Context, repo, id string) (meta.Upload, error) {
	if !validID(id) {
		return meta.Upload{}, meta.ErrUploadUnknown
	}
	return s.store.GetUpload(ctx, repo, id)
}

func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

// Append adds a chunk read from body to session id. rng (nil for a
// streamed chunk) must start at the session's size, else *RangeError;
// length (-1 when unknown) must match the range. When the body ends early
// (the client went away) the bytes that did arrive are kept and
// recorded, so the client can resume after them.
func (s *Service) Append(ctx context.Context, repo, id string, body io.Reader, rng *oci.ChunkRange, length int64) (meta.Upload, error) {
	if !validID(id) {
		return meta.Upload{}, meta.ErrUploadUnknown
	}
	defer s.lock(id)()
	u, err := s.store.GetUpload(ctx, repo, id)
	if err != nil {
		return meta.Upload{}, err
	}
	return s.appendLocked(ctx, u, body, rng, length)
}

func (s *Service) appendLocked(ctx context.Context, u meta.Upload, body io.Reader, rng *oci.ChunkRange, length int64) (meta.Upload, error) {
	if rng != nil {
		if rng.Start != u.Size {
			return u, &RangeError{Size: u.Size}
		}
		if length >= 0 && rng.Len() != length {
			return u, oci.NewError(oci.ErrSizeInvalid, fmt.Sprintf("Content-Range covers %d bytes but Content-Length is %d", rng.Len(), length))
		}
	}
	h, err := restoreState(digest.Algorithm(u.Algorithm), u.HashState)
	if err != nil {
		return u, err
	}
	f, err := os.OpenFile(s.blobs.UploadPath(u.ID), os.O_WRONLY, 0)
	if err != nil {
		return u, fmt.Errorf("open staging file: %w", err)
	}
	defer func() { _ = f.Close() }()
	// Bytes past the recorded size are from a request that never
	// recorded them (a crash): they are not part of the upload.
	if err := f.Truncate(u.Size); err != nil {
		return u, storageErr(err)
	}
	if _, err := f.Seek(u.Size, io.SeekStart); err != nil {
		return u, err
	}
	var limit int64 = -1
	if rng != nil {
		limit = rng.Len()
	}
	n, readErr, writeErr := copyChunk(f, h, body, limit)
	if writeErr != nil {
		_ = f.Truncate(u.Size)
		return u, storageErr(writeErr)
	}
	if readErr == nil && rng != nil && n != rng.Len() {
		_ = f.Truncate(u.Size)
		return u, oci.NewError(oci.ErrSizeInvalid, fmt.Sprintf("chunk has %d bytes, Content-Range says %d", n, rng.Len()))
	}
	if err := f.Sync(); err != nil {
		_ = f.Truncate(u.Size)
		return u, storageErr(err)
	}
	state, err := marshalState(h)
	if err != nil {
		return u, err
	}
	// The record is written even when the client went away, with a fresh
	// context: those bytes arrived and are fsynced.
	if err := s.store.UpdateUpload(context.WithoutCancel(ctx), u.ID, u.Size+n, state); err != nil {
		return u, err
	}
	u.Size += n
	u.HashState = state
	if readErr != nil {
		return u, fmt.Errorf("read chunk: %w", readErr)
	}
	return u, nil
}

// copyChunk copies body into f and h, at most limit bytes when limit >= 0
// (a longer body is a size error, reported as reading one byte more).
func copyChunk(f *os.File, h hash.Hash, body io.Reader, limit int64) (n int64, readErr, writeErr error) {
	if body == nil {
		return 0, nil, nil
	}
	if limit >= 0 {
		body = io.LimitReader(body, limit+1)
	}
	buf := make([]byte, 1<<20)
	for {
		k, err := body.Read(buf)
		if k > 0 {
			if _, werr := f.Write(buf[:k]); werr != nil {
				return n, nil, werr
			}
			_, _ = h.Write(buf[:k])
			n += int64(k)
		}
		if errors.Is(err, io.EOF) {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
	}
}

// Finish closes session id: it appends the final chunk if body has one,
// checks the whole upload digests to want (else DIGEST_INVALID, and the
// session is cancelled), and commits the blob to repo.
func (s *Service) Finish(ctx context.Context, repo, id string, want digest.Digest, body io.Reader, rng *oci.ChunkRange, length int64) (int64, error) {
	if !validID(id) {
		return 0, meta.ErrUploadUnknown
	}
	defer s.lock(id)()
	u, err := s.store.GetUpload(ctx, repo, id)
	if err != nil {
		return 0, err
	}
	if rng != nil || length > 0 || (length < 0 && body != nil) {
		if u, err = s.appendLocked(ctx, u, body, rng, length); err != nil {
			return 0, err
		}
	}
	got, err := s.digestOf(u, want.Algorithm())
	if err != nil {
		return 0, err
	}
	if got != want {
		s.cancelLocked(context.WithoutCancel(ctx), u.ID)
		return 0, oci.NewError(oci.ErrDigestInvalid, fmt.Sprintf("uploaded content has digest %s, not %s", got, want))
	}
	staged := s.blobs.UploadPath(u.ID)
	existed, err := s.store.CommitBlob(ctx, repo, want.String(), u.Size, func() error { return s.blobs.Place(staged, want) })
	if err != nil {
		return 0, storageErr(err)
	}
	if existed {
		_ = os.Remove(staged)
	}
	if _, err := s.store.DeleteUpload(context.WithoutCancel(ctx), u.ID); err != nil {
		return 0, err
	}
	return u.Size, nil
}

// digestOf is the digest of the session's bytes with alg: from the saved
// state when the session hashes with alg, else by reading the file.
func (s *Service) digestOf(u meta.Upload, alg digest.Algorithm) (digest.Digest, error) {
	if digest.Algorithm(u.Algorithm) == alg {
		h, err := restoreState(alg, u.HashState)
		if err != nil {
			return "", err
		}
		return digest.NewDigest(alg, h), nil
	}
	f, err := os.Open(s.blobs.UploadPath(u.ID))
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	return alg.FromReader(io.LimitReader(f, u.Size))
}

// Cancel ends session id and removes its staging file.
func (s *Service) Cancel(ctx context.Context, repo, id string) error {
	if !validID(id) {
		return meta.ErrUploadUnknown
	}
	defer s.lock(id)()
	if _, err := s.store.GetUpload(ctx, repo, id); err != nil {
		return err
	}
	s.cancelLocked(ctx, id)
	return nil
}

func (s *Service) cancelLocked(ctx context.Context, id string) {
	if ok, err := s.store.DeleteUpload(ctx, id); err == nil && ok {
		_ = os.Remove(s.blobs.UploadPath(id))
	}
}

// Remove deletes an abandoned session (for the GC), reporting its size.
func (s *Service) Remove(ctx context.Context, id string) error {
	defer s.lock(id)()
	s.cancelLocked(ctx, id)
	return nil
}

// storageErr marks a full disk as ErrStorageFull.
func storageErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrStorageFull, err)
	}
	return err
}
