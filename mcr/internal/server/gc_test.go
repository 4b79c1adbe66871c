package server_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"git.metacircular.net/metacircular/mcr/internal/server"
)

// TestGCUnderLoad pushes images from several clients while garbage
// collections run back to back from another connection (as `mcr gc` does
// from another process) with a 150 ms grace window — far narrower than a
// real push, so collections race every push — plus garbage (blobs no manifest references, deleted
// manifests). A push may be refused (MANIFEST_BLOB_UNKNOWN: its layer was
// collected before the manifest arrived) and is retried; no image whose
// push succeeded may lose a blob: afterwards every tag is pulled and
// every digest verified.
func TestGCUnderLoad(t *testing.T) {
	h := start(t, options{grace: "150ms"})
	const pushers, images = 3, 8
	ctx, cancel := context.WithCancel(context.Background())
	var gcRuns, collected int
	gcDone := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			rep, err := server.RunGC(ctx, h.cfg, false, nil)
			if err != nil && ctx.Err() == nil {
				gcDone <- err
				return
			}
			gcRuns++
			collected += len(rep.Blobs)
			time.Sleep(5 * time.Millisecond)
		}
		gcDone <- nil
	}()
	type pushed struct {
		repo, tag string
		digest    digest.Digest
	}
	var mu sync.Mutex
	var ok []pushed
	var retries int
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := h.client(alice)
			repo := fmt.Sprintf("team/load%d", p)
			for i := range images {
				garbage := make([]byte, 4096)
				_, _ = rand.Read(garbage)
				c.pushBlob(t, repo, garbage)
				img := newImage(fmt.Sprintf("%d-%d-%x", p, i, garbage[:4]))
				tag := fmt.Sprintf("v%d", i)
				for attempt := 0; ; attempt++ {
					c.pushBlob(t, repo, img.config)
					c.pushBlob(t, repo, img.layer)
					r := c.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+tag,
						http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}, img.manifest)
					if r.status == http.StatusCreated {
						break
					}
					if r.errCode() != "MANIFEST_BLOB_UNKNOWN" || attempt > 50 {
						t.Errorf("push %s:%s: %d %s", repo, tag, r.status, r.body)
						return
					}
					mu.Lock()
					retries++
					mu.Unlock()
				}
				if i%3 == 2 {
					// Garbage: a manifest deleted right after its push.
					r := c.do(t, http.MethodDelete, "/v2/"+repo+"/manifests/"+img.digest.String(), nil, nil)
					if r.status != http.StatusAccepted {
						t.Errorf("delete %s@%s: %d %s", repo, img.digest, r.status, r.body)
					}
					continue
				}
				mu.Lock()
				ok = append(ok, pushed{repo, tag, img.digest})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-gcDone; err != nil {
		t.Fatalf("gc: %v", err)
	}
	rep, err := server.RunGC(context.Background(), h.cfg, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	collected += len(rep.Blobs)
	t.Logf("%d gc runs collected %d blobs; %d pushes retried; %d images kept", gcRuns+1, collected, retries, len(ok))
	if collected == 0 {
		t.Fatal("the collector deleted nothing: the garbage was not collected")
	}
	c := h.client(alice)
	for _, p := range ok {
		got, err := c.pullImage(t, p.repo, p.tag)
		if err != nil {
			t.Errorf("lost: %v", err)
		} else if got != p.digest {
			t.Errorf("%s:%s is %s, pushed %s", p.repo, p.tag, got, p.digest)
		}
	}
	// A dry run after everything settled finds nothing more to delete
	// and lists it the same way.
	dry, err := server.RunGC(context.Background(), h.cfg, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Blobs) != 0 {
		t.Errorf("dry run after a full collection lists %d blobs", len(dry.Blobs))
	}
}

// TestGCDryRunAndGrace: a dry run lists unreferenced blobs without
// deleting them; blobs inside the grace window are kept; abandoned
// uploads go.
func TestGCDryRunAndGrace(t *testing.T) {
	h := start(t, options{grace: "1h"})
	c := h.client(alice)
	c.pushImage(t, "team/app", "v1", newImage("kept"))
	loose := c.pushBlob(t, "team/app", []byte("unreferenced"))
	rep, err := server.RunGC(context.Background(), h.cfg, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blobs) != 0 {
		t.Fatalf("grace window ignored: %+v", rep.Blobs)
	}
	cfg := *h.cfg
	cfg.GC.Grace.Duration = time.Nanosecond
	cfg.GC.UploadTTL.Duration = time.Nanosecond
	if r := c.do(t, http.MethodPost, "/v2/team/app/blobs/uploads/", nil, nil); r.status != http.StatusAccepted {
		t.Fatal(r.status)
	}
	time.Sleep(5 * time.Millisecond)
	rep, err = server.RunGC(context.Background(), &cfg, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Blobs) != 1 || rep.Blobs[0].Digest != loose.String() || len(rep.Uploads) != 1 {
		t.Fatalf("dry run: %+v", rep)
	}
	if r := c.do(t, http.MethodHead, "/v2/team/app/blobs/"+loose.String(), nil, nil); r.status != http.StatusOK {
		t.Fatalf("dry run deleted the blob: %d", r.status)
	}
	if rep, err = server.RunGC(context.Background(), &cfg, false, nil); err != nil || len(rep.Blobs) != 1 {
		t.Fatalf("gc: %v %+v", err, rep)
	}
	if r := c.do(t, http.MethodHead, "/v2/team/app/blobs/"+loose.String(), nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("collected blob still served: %d", r.status)
	}
	if _, err := c.pullImage(t, "team/app", "v1"); err != nil {
		t.Fatalf("referenced blobs collected: %v", err)
	}
}
