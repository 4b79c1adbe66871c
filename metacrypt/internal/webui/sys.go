package webui

import (
	"net/http"

	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
)

// statusData is the start page's: the barrier's state and, for a
// signed-in user of an unsealed Metacrypt, the mounts.
type statusData struct {
	Status      *mcv1.StatusResponse
	Mounts      []*mcv1.Mount
	MountsError string
}

func (ui *UI) statusPage(w http.ResponseWriter, r *http.Request, p *page) {
	ui.showStatus(w, r, p, http.StatusOK)
}

func (ui *UI) showStatus(w http.ResponseWriter, r *http.Request, p *page, status int) {
	st, err := ui.sys.Status(r.Context(), &mcv1.StatusRequest{})
	if err != nil {
		ui.show(w, p.setError(err), "error", p)
		return
	}
	d := statusData{Status: st}
	if p.User != nil && st.GetInitialized() && !st.GetSealed() {
		resp, err := ui.sys.ListMounts(r.Context(), &mcv1.ListMountsRequest{})
		if err != nil {
			// Sealed since the status, or MCIAS unreachable: the page
			// still shows the barrier.
			d.MountsError = errMessage(err)
		}
		d.Mounts = resp.GetMounts()
	}
	p.Nav, p.Data = "status", d
	ui.show(w, status, "status", p)
}

// unseal is public, as SysService.Unseal is: the password is the
// credential, and the barrier throttles failures.
func (ui *UI) unseal(w http.ResponseWriter, r *http.Request, p *page) {
	next := localPath(r.PostFormValue("next"))
	_, err := ui.sys.Unseal(r.Context(), &mcv1.UnsealRequest{Password: r.PostFormValue("password")})
	if err != nil {
		p.Next = next
		ui.showStatus(w, r, p, p.setError(err))
		return
	}
	done(w, r, "Unsealed.", next)
}

// seal is the admins' (SysService.Seal is admin-only; the API refuses
// anyone else).
func (ui *UI) seal(w http.ResponseWriter, r *http.Request, p *page) {
	if _, err := ui.sys.Seal(r.Context(), &mcv1.SealRequest{}); err != nil {
		ui.showStatus(w, r, p, p.setError(err))
		return
	}
	done(w, r, "Sealed: every secret is locked until the next unseal.", "/")
}
