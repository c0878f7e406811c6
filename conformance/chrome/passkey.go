package chrome

import (
	"context"

	cdppage "github.com/chromedp/cdproto/page"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// Keystep's sign-in and passkey controls.
const (
	SignInButton     = "form[action='/login/password'] button[type=submit]"
	PasskeyButton    = "[data-passkey-step] [data-passkey-button]"
	AddPasskeyButton = "[data-passkey-register] [data-passkey-button]"
)

// The virtual authenticators of the tests. Every one answers presence at
// once.
var (
	// A passkey kept on one device (a laptop's TPM): not backup-eligible,
	// so amr says hwk.
	DeviceBoundPasskey = cdpwebauthn.VirtualAuthenticatorOptions{
		Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
		Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true,
		HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
	}
	// A passkey synced by a password manager: backup-eligible and backed
	// up, so amr says swk.
	SyncedPasskey = cdpwebauthn.VirtualAuthenticatorOptions{
		Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
		Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true,
		HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
		DefaultBackupEligibility: true, DefaultBackupState: true,
	}
	// A plain USB security key: no resident keys, no PIN or biometric.
	USBSecurityKey = cdpwebauthn.VirtualAuthenticatorOptions{
		Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Transport: cdpwebauthn.AuthenticatorTransportUsb,
		AutomaticPresenceSimulation: true,
	}
)

// noAutofillJS hides passkey autofill (conditional mediation) from the
// pages. A virtual authenticator answers a conditional request at once, as
// if the person had picked the passkey in the username field's list, so
// with autofill on, a sign-in page with a passkey around signs in by itself.
const noAutofillJS = `if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = function () { return Promise.resolve(false); };`

// EnableWebAuthn turns the WebAuthn domain on, so that ceremonies go to
// virtual authenticators and never to a real device, and passkey autofill
// off (see Autofill).
func (b *Browser) EnableWebAuthn() {
	b.t.Helper()
	b.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{})
		return err
	}))
	b.Autofill(false)
}

// Autofill turns passkey autofill on or off for the pages loaded next.
func (b *Browser) Autofill(on bool) {
	b.t.Helper()
	b.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		switch {
		case on && b.noAutofill != "":
			_, err := chromedp.Call(ctx, cdppage.RemoveScriptToEvaluateOnNewDocument, cdppage.RemoveScriptToEvaluateOnNewDocumentParams{Identifier: b.noAutofill})
			b.noAutofill = ""
			return err
		case !on && b.noAutofill == "":
			res, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: noAutofillJS})
			b.noAutofill = res.Identifier
			return err
		}
		return nil
	}))
}

// AddAuthenticator plugs a virtual authenticator into the tab (after
// EnableWebAuthn) and returns its ID, for the WebAuthn domain's calls.
func (b *Browser) AddAuthenticator(o cdpwebauthn.VirtualAuthenticatorOptions) cdpwebauthn.AuthenticatorID {
	b.t.Helper()
	var id cdpwebauthn.AuthenticatorID
	b.Must(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		res, err := chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{Options: &o})
		id = res.AuthenticatorID
		return err
	}))
	return id
}

// SignIn fills Keystep's sign-in page and sends it.
func (b *Browser) SignIn(user, pass string) {
	b.t.Helper()
	b.TypeIn("#username", user)
	b.TypeIn("#password", pass)
	b.Follow(SignInButton)
}

// AddPasskey names and adds a passkey on the portal's page for it.
func (b *Browser) AddPasskey(name string) {
	b.t.Helper()
	b.See("Add a passkey or security key")
	b.TypeIn("#passkey-name", name)
	b.Follow(AddPasskeyButton)
}
