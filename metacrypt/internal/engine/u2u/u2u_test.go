package u2u

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"maps"
	"testing"
	"time"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	"git.metacircular.net/metacircular/metacrypt/internal/engine"
	"git.metacircular.net/metacircular/metacrypt/internal/engine/enginetest"
	"git.metacircular.net/metacircular/metacrypt/internal/policy"
)

func user(name string) engine.Caller {
	return engine.Caller{Username: name, Subject: "subject-" + name, AccountType: "human", Roles: []string{"user"}}
}

var (
	alice, bob, carol = user("alice"), user("bob"), user("carol")
	admin             = engine.Caller{Username: "admin", Subject: "subject-admin", Roles: []string{engine.RoleAdmin}}
)

type fixture struct {
	svc *Service
	env *enginetest.Env
}

// newFixture is the engine over in-memory mounts "u2u" and "other" (a
// transit mount), every user allowed everything on "u2u", and keys for
// alice, bob and carol.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	env := enginetest.New()
	env.Mount("u2u", Type)
	env.Mount("other", "transit")
	env.Rule(policy.Rule{Effect: policy.Allow, Subject: policy.Subject{Roles: []string{"user"}}, Mounts: []string{"u2u"},
		Operations: []string{"*"}, Resources: []string{"user/*", "users"}})
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f := &fixture{svc: New(Deps{Mounts: env, Authz: env, Sealed: env.Sealed, Now: func() time.Time { return now }}), env: env}
	for _, c := range []engine.Caller{alice, bob, carol} {
		if _, err := f.svc.CreateKey(t.Context(), c, "u2u"); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) send(t testing.TB, from engine.Caller, to, msg, ad string) Sent {
	t.Helper()
	s, err := f.svc.Send(t.Context(), from, "u2u", SendRequest{Recipient: to, Plaintext: []byte(msg), AssociatedData: []byte(ad)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) open(t testing.TB, c engine.Caller, msg []byte, ad string) (Opened, error) {
	return f.svc.Open(t.Context(), c, "u2u", OpenRequest{Message: msg, AssociatedData: []byte(ad)})
}

// TestAliceToBob: bob opens and learns alice sent it; carol, alice
// herself and an admin cannot; other associated data, any altered byte
// and a header swapped to name carol as the sender do not open.
func TestAliceToBob(t *testing.T) {
	f := newFixture(t)
	sent := f.send(t, alice, "bob", "the launch code is 0000", "thread-7")
	o, err := f.open(t, bob, sent.Message, "thread-7")
	if err != nil {
		t.Fatal(err)
	}
	if o.Sender != "alice" || string(o.Plaintext) != "the launch code is 0000" || o.SenderKeyVersion != 1 || o.RecipientKeyVersion != 1 ||
		!o.SentAt.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("opened: %+v", o)
	}
	for name, c := range map[string]engine.Caller{"carol": carol, "alice": alice, "admin": admin} {
		if _, err := f.open(t, c, sent.Message, "thread-7"); !errors.Is(err, engine.ErrDenied) {
			t.Errorf("%s opens bob's message: %v", name, err)
		}
	}
	h, hb, ct, err := parseMessage(sent.Message)
	if err != nil {
		t.Fatal(err)
	}
	// carol relabels the message as hers: her own key does not open it.
	toCarol := h
	toCarol.recipient = "carol"
	if _, err := f.open(t, carol, append(toCarol.marshal(), ct...), "thread-7"); apierr.Describe(err).Field != "message" {
		t.Errorf("relabelled to carol: %v", err)
	}
	// A replay claiming carol sent it.
	fromCarol := h
	fromCarol.sender = "carol"
	swapped := append(fromCarol.marshal(), ct...)
	if _, err := f.open(t, bob, swapped, "thread-7"); apierr.Describe(err).Field != "message" {
		t.Errorf("swapped sender opened: %v", err)
	}
	if _, err := f.open(t, bob, sent.Message, "thread-8"); apierr.Describe(err).Field != "message" {
		t.Errorf("other associated data: %v", err)
	}
	for i := range sent.Message {
		bad := bytes.Clone(sent.Message)
		bad[i] ^= 0x20
		if _, err := f.open(t, bob, bad, "thread-7"); err == nil {
			t.Fatalf("byte %d altered (of %d, header %d) still opens", i, len(sent.Message), len(hb))
		}
	}
}

// TestForgedSender has someone who knows every public key but not
// alice's private key seal a message to bob naming alice as the sender:
// it does not open. The same forger holding alice's private key (read from
// the barrier, as only the engine can) makes one that does, so the
// refusal is the static-static secret's doing.
func TestForgedSender(t *testing.T) {
	f := newFixture(t)
	m, _ := f.env.Resolve(t.Context(), "u2u")
	apub, _ := loadPublic(t.Context(), m, "alice")
	bpub, _ := loadPublic(t.Context(), m, "bob")
	alicePub, _ := apub.public(1)
	bobPub, _ := bpub.public(1)
	forge := func(static *ecdh.PrivateKey) []byte {
		eph, _ := ecdh.X25519().GenerateKey(rand.Reader)
		h := header{sender: "alice", senderVersion: 1, recipient: "bob", recipientVersion: 1, sentAt: time.Unix(1, 0), ephemeral: eph.PublicKey().Bytes()}
		hb := h.marshal()
		dh1, _ := eph.ECDH(bobPub)
		dh2, _ := static.ECDH(bobPub)
		aead, nonce, err := messageCipher(dh1, dh2, hb, alicePub, bobPub)
		if err != nil {
			t.Fatal(err)
		}
		return aead.Seal(hb, nonce, []byte("wire the money"), additionalData(hb, nil))
	}
	attacker, _ := ecdh.X25519().GenerateKey(rand.Reader)
	if _, err := f.open(t, bob, forge(attacker), ""); apierr.Describe(err).Field != "message" {
		t.Fatalf("forged sender opened: %v", err)
	}
	apriv, err := loadPrivate(t.Context(), m, apub)
	if err != nil {
		t.Fatal(err)
	}
	aliceKey, _ := apriv.private(apub, 1)
	if o, err := f.open(t, bob, forge(aliceKey), ""); err != nil || o.Sender != "alice" {
		t.Fatalf("the forger with alice's key: %+v %v", o, err)
	}
}

// TestRotation: after bob rotates, old messages open with his old
// version and new ones use the new; after alice rotates, her old
// messages still verify as hers.
func TestRotation(t *testing.T) {
	f := newFixture(t)
	old := f.send(t, alice, "bob", "before", "")
	keys, err := f.svc.RotateKey(t.Context(), bob, "u2u")
	if err != nil || keys.LatestVersion != 2 || len(keys.Versions) != 2 || bytes.Equal(keys.Versions[0].PublicKey, keys.Versions[1].PublicKey) {
		t.Fatalf("rotate: %+v %v", keys, err)
	}
	fresh := f.send(t, alice, "bob", "after", "")
	if fresh.RecipientKeyVersion != 2 || old.RecipientKeyVersion != 1 {
		t.Fatalf("versions: old %d, new %d", old.RecipientKeyVersion, fresh.RecipientKeyVersion)
	}
	if _, err := f.svc.RotateKey(t.Context(), alice, "u2u"); err != nil {
		t.Fatal(err)
	}
	newest := f.send(t, alice, "bob", "newest", "")
	for _, c := range []struct {
		s      Sent
		want   string
		sv, rv int
	}{{old, "before", 1, 1}, {fresh, "after", 1, 2}, {newest, "newest", 2, 2}} {
		o, err := f.open(t, bob, c.s.Message, "")
		if err != nil || string(o.Plaintext) != c.want || o.SenderKeyVersion != c.sv || o.RecipientKeyVersion != c.rv || o.Sender != "alice" {
			t.Errorf("%s: %+v %v", c.want, o, err)
		}
	}
	if _, err := f.svc.RotateKey(t.Context(), user("dave"), "u2u"); apierr.KindOf(err) != apierr.NotFound {
		t.Fatalf("rotate without a key: %v", err)
	}
}

// TestFirstUseAndRefusals: a sender's key is made on first send, but a
// refused send (bad recipient, no recipient key, too long, no rule)
// writes nothing; keys are listed; a second key is a conflict.
func TestFirstUseAndRefusals(t *testing.T) {
	f := newFixture(t)
	dave := user("dave")
	before := f.env.Storage("u2u").Snapshot()
	for field, c := range map[string]struct {
		caller engine.Caller
		req    SendRequest
		kind   apierr.Kind
	}{
		"recipient":       {dave, SendRequest{Recipient: "bob smith"}, apierr.Invalid},
		"plaintext":       {dave, SendRequest{Recipient: "bob", Plaintext: make([]byte, MaxPlaintext+1)}, apierr.Invalid},
		"no key":          {dave, SendRequest{Recipient: "erin"}, apierr.NotFound},
		"no rule":         {engine.Caller{Username: "svc", AccountType: "system"}, SendRequest{Recipient: "bob"}, apierr.Denied},
		"unauthenticated": {engine.Caller{}, SendRequest{Recipient: "bob"}, apierr.Unauthenticated},
	} {
		if _, err := f.svc.Send(t.Context(), c.caller, "u2u", c.req); apierr.KindOf(err) != c.kind {
			t.Errorf("%s: %v", field, err)
		}
	}
	if !maps.Equal(before, f.env.Storage("u2u").Snapshot()) {
		t.Fatal("a refused send wrote")
	}
	sent := f.send(t, dave, "bob", "hi", "")
	if o, err := f.open(t, bob, sent.Message, ""); err != nil || o.Sender != "dave" {
		t.Fatalf("first use: %+v %v", o, err)
	}
	if _, err := f.svc.CreateKey(t.Context(), dave, "u2u"); apierr.KindOf(err) != apierr.Conflict {
		t.Fatalf("second key: %v", err)
	}
	list, err := f.svc.ListKeys(t.Context(), carol, "u2u")
	if err != nil || len(list) != 4 || list[3].Username != "dave" || len(list[3].Versions[0].PublicKey) != 32 {
		t.Fatalf("list: %+v %v", list, err)
	}
	k, err := f.svc.GetKey(t.Context(), carol, "u2u", "bob")
	if err != nil || k.LatestVersion != 1 {
		t.Fatalf("get: %+v %v", k, err)
	}
	if _, err := f.svc.GetKey(t.Context(), carol, "u2u", "bob/x"); apierr.Describe(err).Field != "username" {
		t.Fatalf("bad username: %v", err)
	}
	if _, err := f.open(t, bob, []byte("hello"), ""); apierr.Describe(err).Field != "message" {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := f.svc.Send(t.Context(), alice, "other", SendRequest{Recipient: "bob"}); !errors.Is(err, engine.ErrPrecondition) {
		t.Fatalf("other mount type: %v", err)
	}
}

// TestSubjectAndACL: a username now held by another MCIAS account cannot
// use the former holder's keys; an operation-specific rule lets a
// service send to bob only.
func TestSubjectAndACL(t *testing.T) {
	f := newFixture(t)
	sent := f.send(t, alice, "bob", "for the real bob", "")
	impostor := user("bob")
	impostor.Subject = "subject-someone-else"
	if _, err := f.open(t, impostor, sent.Message, ""); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("new holder of the name opens: %v", err)
	}
	if _, err := f.svc.Send(t.Context(), impostor, "u2u", SendRequest{Recipient: "alice"}); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("new holder of the name sends: %v", err)
	}
	if _, err := f.svc.RotateKey(t.Context(), impostor, "u2u"); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("new holder of the name rotates: %v", err)
	}
	notifier := engine.Caller{Username: "notifier", AccountType: "system"}
	f.env.Rule(policy.Rule{Effect: policy.Allow, Subject: policy.Subject{Accounts: []string{"notifier"}}, Mounts: []string{"u2u"},
		Operations: []string{OpSend}, Resources: []string{"user/bob"}})
	if _, err := f.svc.Send(t.Context(), notifier, "u2u", SendRequest{Recipient: "bob", Plaintext: []byte("disk full")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Send(t.Context(), notifier, "u2u", SendRequest{Recipient: "alice"}); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("send outside the rule: %v", err)
	}
	if _, err := f.svc.Open(t.Context(), notifier, "u2u", OpenRequest{Message: sent.Message}); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("open without the rule: %v", err)
	}
	f.env.Seal()
	for name, err := range map[string]error{
		"send":   second(f.svc.Send(t.Context(), alice, "u2u", SendRequest{Recipient: "bob"})),
		"open":   second(f.svc.Open(t.Context(), bob, "u2u", OpenRequest{Message: sent.Message})),
		"list":   second(f.svc.ListKeys(t.Context(), bob, "u2u")),
		"rotate": second(f.svc.RotateKey(t.Context(), bob, "u2u")),
	} {
		if !errors.Is(err, engine.ErrSealed) {
			t.Errorf("sealed %s: %v", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// TestHandle drives the generic request.
func TestHandle(t *testing.T) {
	f := newFixture(t)
	m, _ := f.env.Resolve(t.Context(), "u2u")
	do := func(c engine.Caller, op, path string, data map[string]any) (map[string]any, error) {
		return f.svc.Handle(t.Context(), engine.Request{Caller: c, Mount: m, Operation: op, Path: path, Data: data})
	}
	b64 := base64.StdEncoding.EncodeToString
	out, err := do(alice, "send", "user/bob", map[string]any{"plaintext": b64([]byte("hi bob"))})
	if err != nil {
		t.Fatal(err)
	}
	if out, err = do(bob, "open", "", map[string]any{"message": out["message"]}); err != nil || out["sender"] != "alice" || out["plaintext"] != b64([]byte("hi bob")) {
		t.Fatalf("open: %v %v", out, err)
	}
	if out, err = do(bob, "get-key", "user/alice", nil); err != nil || out["latest_version"] != float64(1) {
		t.Fatalf("get-key: %v %v", out, err)
	}
	if out, err = do(bob, "list-keys", "", nil); err != nil || len(enginetest.Value[[]any](out, "keys")) != 3 {
		t.Fatalf("list-keys: %v %v", out, err)
	}
	if out, err = do(bob, "rotate-key", "", nil); err != nil || out["latest_version"] != float64(2) {
		t.Fatalf("rotate-key: %v %v", out, err)
	}
	for field, c := range map[string]struct {
		op, path string
		data     map[string]any
	}{
		"operation": {"peek", "", nil},
		"plaintext": {"send", "user/bob", map[string]any{"plaintext": "?"}},
		"message":   {"open", "", map[string]any{"message": "AAAA"}},
		"path":      {"open", "user/bob", nil},
		"data":      {"send", "user/bob", map[string]any{"sender": "carol"}},
	} {
		if _, err := do(alice, c.op, c.path, c.data); apierr.Describe(err).Field != field {
			t.Errorf("%s: %v", field, err)
		}
	}
}

// TestRealBarrier runs the engine behind the real mount table, barrier
// and policy, across a seal.
func TestRealBarrier(t *testing.T) {
	ctx := t.Context()
	r := enginetest.NewReal(t)
	svc := New(Deps{Mounts: r.Mounts, Authz: r.Policy, Sealed: r.Barrier.Sealed})
	r.Registry.Register(svc)
	if _, err := r.Mounts.Create(ctx, "u2u", Type); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Policy.CreateRule(ctx, policy.Rule{Effect: policy.Allow, Subject: policy.Subject{Roles: []string{"user"}},
		Operations: []string{"*"}, Resources: []string{"user/*"}}); err != nil {
		t.Fatal(err)
	}
	req := func(c engine.Caller, op string, data map[string]any) (map[string]any, error) {
		return r.Mounts.Request(ctx, "u2u", engine.Request{Caller: c, Operation: op, Data: data})
	}
	if _, err := req(bob, "create-key", nil); err != nil {
		t.Fatal(err)
	}
	out, err := req(alice, "send", map[string]any{"recipient": "bob", "plaintext": "c2VjcmV0"})
	if err != nil {
		t.Fatal(err)
	}
	r.Barrier.Seal()
	if _, err := req(bob, "open", map[string]any{"message": out["message"]}); !errors.Is(err, engine.ErrSealed) {
		t.Fatalf("sealed: %v", err)
	}
	if err := r.Barrier.Unseal(ctx, []byte(enginetest.Password)); err != nil {
		t.Fatal(err)
	}
	o, err := req(bob, "open", map[string]any{"message": out["message"]})
	if err != nil || o["sender"] != "alice" || o["plaintext"] != "c2VjcmV0" {
		t.Fatalf("after unseal: %v %v", o, err)
	}
	if _, err := req(bob, "list-keys", nil); !errors.Is(err, engine.ErrDenied) {
		t.Fatalf("list outside the rule: %v", err)
	}
}
