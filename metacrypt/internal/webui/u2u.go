package webui

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	"git.metacircular.net/metacircular/mcdsl/apierr"
	mcv1 "git.metacircular.net/metacircular/metacrypt/gen/metacrypt/v1"
)

// The page of a user-to-user mount ("u2u"): the signed-in user's key
// pair (create, rotate), the users' public keys, sending a message (the
// answer shows the sealed message) and opening one (the answer shows its
// sender and plaintext). Every call is U2UService's; the engine uses a
// private key only for its own user, so the page can never open another
// user's messages. Plaintexts are in no URL, log or cache.

func (ui *UI) u2uRoutes(m *http.ServeMux) {
	on := func(pattern string, h handler) { m.HandleFunc(pattern, ui.mounted(engineU2U, h)) }
	on("GET /u2u/{mount}", ui.u2uPage)
	on("POST /u2u/{mount}/keys", ui.createU2UKey)
	on("POST /u2u/{mount}/keys/rotate", ui.rotateU2UKey)
	on("POST /u2u/{mount}/send", ui.sendU2U)
	on("POST /u2u/{mount}/open", ui.openU2U)
}

// u2uSendForm and u2uOpenForm are the message forms' fields; associated
// data is text, as in metacryptctl.
type u2uSendForm struct {
	Recipient, Message, AssociatedData string
}

type u2uOpenForm struct {
	Message, AssociatedData string
}

// u2uSent is a send's answer: the sealed message, once.
type u2uSent struct {
	Recipient string
	// Message is the sealed message in base64, as metacryptctl writes it;
	// Download saves it as a file.
	Message                               string
	Download                              template.URL
	SenderKeyVersion, RecipientKeyVersion int32
	SentAt                                *timestamppb.Timestamp
}

type u2uData struct {
	// Mine is the caller's keys; NoKey (the API's answer) when there are
	// none yet, MineDenied when the caller may not read them.
	Mine              *mcv1.U2UUserKeys
	NoKey, MineDenied string
	// Users are the users' public keys; UsersDenied the API's refusal.
	Users       []*mcv1.U2UUserKeys
	UsersDenied string
	Send        u2uSendForm
	Open        u2uOpenForm
	Sent        *u2uSent
	Opened      *mcv1.U2UOpenResponse
	// Plaintext is Opened's, shown as text when it is UTF-8.
	Plaintext *shownBytes
}

func (ui *UI) u2uPage(w http.ResponseWriter, r *http.Request, p *page) {
	ui.showU2U(w, r, p, http.StatusOK, u2uData{})
}

// showU2U shows the caller's keys (GetKey, read on "user/<caller>") and
// the users' (ListKeys, read on "users") beside the send and open forms.
func (ui *UI) showU2U(w http.ResponseWriter, r *http.Request, p *page, status int, d u2uData) {
	mine, err := ui.u2u.GetKey(r.Context(), &mcv1.U2UGetKeyRequest{Mount: p.Mount, Username: p.User.Username})
	switch {
	case err == nil:
		d.Mine = mine.GetKeys()
	case apierr.FromGRPC(err).Kind == apierr.NotFound:
		d.NoKey = apierr.FromGRPC(err).Message
	default:
		msg, ok := listDenied(err)
		if !ok {
			ui.fail(w, r, p, err)
			return
		}
		d.MineDenied = msg
	}
	users, err := ui.u2u.ListKeys(r.Context(), &mcv1.U2UListKeysRequest{Mount: p.Mount})
	if err != nil {
		msg, ok := listDenied(err)
		if !ok {
			ui.fail(w, r, p, err)
			return
		}
		d.UsersDenied = msg
	}
	d.Users = users.GetKeys()
	p.Nav, p.Data = "u2u", d
	ui.show(w, status, "u2u", p)
}

// createU2UKey and rotateU2UKey make the caller's key pair (manage on
// "user/<caller>"); a rotated key's old versions still open what was
// sent to them.
func (ui *UI) createU2UKey(w http.ResponseWriter, r *http.Request, p *page) {
	resp, err := ui.u2u.CreateKey(r.Context(), &mcv1.U2UCreateKeyRequest{Mount: p.Mount})
	ui.keyDone(w, r, p, "created", resp, err)
}

func (ui *UI) rotateU2UKey(w http.ResponseWriter, r *http.Request, p *page) {
	resp, err := ui.u2u.RotateKey(r.Context(), &mcv1.U2URotateKeyRequest{Mount: p.Mount})
	ui.keyDone(w, r, p, "rotated", resp, err)
}

func (ui *UI) keyDone(w http.ResponseWriter, r *http.Request, p *page, what string, resp *mcv1.U2UKeysResponse, err error) {
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showU2U(w, r, p, status, u2uData{}) })
		return
	}
	v := resp.GetKeys().GetLatestVersion()
	ui.d.Logger.Info("web: u2u key "+what, "mount", p.Mount, "version", v, "by", p.User.Username)
	done(w, r, fmt.Sprintf("Your key pair is %s: version %d.", what, v), mountPath(engineU2U, p.Mount))
}

// sendU2U seals a message to a recipient (send on "user/<recipient>");
// the sender's key is created on first use. The answer shows the sealed
// message, which the sender hands over by any channel.
func (ui *UI) sendU2U(w http.ResponseWriter, r *http.Request, p *page) {
	f := u2uSendForm{
		Recipient: strings.TrimSpace(r.PostFormValue("recipient")), Message: r.PostFormValue("message"),
		AssociatedData: r.PostFormValue("associated_data"),
	}
	resp, err := ui.u2u.Send(r.Context(), &mcv1.U2USendRequest{
		Mount: p.Mount, Recipient: f.Recipient, Plaintext: []byte(f.Message), AssociatedData: bytesOf(f.AssociatedData),
	})
	if err != nil {
		ui.formError(w, r, p, err, func(status int) { ui.showU2U(w, r, p, status, u2uData{Send: f}) })
		return
	}
	msg := base64.StdEncoding.EncodeToString(resp.GetMessage())
	ui.showU2U(w, r, p, http.StatusOK, u2uData{Sent: &u2uSent{
		Recipient: f.Recipient, Message: msg, Download: dataURL("text/plain", []byte(msg+"\n")),
		SenderKeyVersion: resp.GetSenderKeyVersion(), RecipientKeyVersion: resp.GetRecipientKeyVersion(), SentAt: resp.GetSentAt(),
	}})
}

// openU2U opens a message addressed to the caller (open on
// "user/<caller>") and shows who sent it and what it says.
func (ui *UI) openU2U(w http.ResponseWriter, r *http.Request, p *page) {
	f := u2uOpenForm{Message: strings.TrimSpace(r.PostFormValue("message")), AssociatedData: r.PostFormValue("associated_data")}
	refused := func(err error) {
		ui.formError(w, r, p, err, func(status int) { ui.showU2U(w, r, p, status, u2uData{Open: f}) })
	}
	msg, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(f.Message), ""))
	if err != nil {
		refused(badField("message", "not a message: want the base64 text the sender was given (%v)", err))
		return
	}
	resp, err := ui.u2u.Open(r.Context(), &mcv1.U2UOpenRequest{Mount: p.Mount, Message: msg, AssociatedData: bytesOf(f.AssociatedData)})
	if err != nil {
		refused(err)
		return
	}
	ui.showU2U(w, r, p, http.StatusOK, u2uData{Opened: resp, Plaintext: showBytes(resp.GetPlaintext(), true)})
}
