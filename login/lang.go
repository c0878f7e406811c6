package login

import (
	"context"
	"net/http"

	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/storage"
)

// A page's language is chosen from what the request reveals as it is
// handled (i18n.Choice): the sign-in's ui_locales once its request is
// loaded (loadFlow), the account's saved language once its session is
// (loadSession), and always the browser's Accept-Language. handle puts
// a langNote in each request's context for them to write to.
type langNote struct {
	uiLocales []string
	saved     string
	accept    string // the request's Accept-Language, for mail it causes
	notMine   bool   // the request is not the mail recipient's (noteNotRecipient)
}

type langKey struct{}

// withLangNote returns r carrying an empty langNote.
func withLangNote(r *http.Request) *http.Request {
	if _, ok := r.Context().Value(langKey{}).(*langNote); ok {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), langKey{}, &langNote{accept: r.Header.Get("Accept-Language")}))
}

// noteUILocales records the sign-in's ui_locales for the page's language.
func noteUILocales(ctx context.Context, l []string) {
	if n, ok := ctx.Value(langKey{}).(*langNote); ok {
		n.uiLocales = l
	}
}

// noteSaved records the account's saved language ("" for none).
func noteSaved(ctx context.Context, lang string) {
	if n, ok := ctx.Value(langKey{}).(*langNote); ok {
		n.saved = lang
	}
}

// tr returns the printer for r's language, as far as r has revealed it.
func (h *Handler) tr(r *http.Request) *i18n.Printer {
	ch := i18n.Choice{AcceptLanguage: r.Header.Get("Accept-Language")}
	if n, ok := r.Context().Value(langKey{}).(*langNote); ok {
		ch.UILocales, ch.Saved = n.uiLocales, n.saved
	}
	return h.cfg.Catalogs.Printer(h.cfg.Catalogs.Choose(ch))
}

// mailTr returns the printer of an email to u caused by the request in
// ctx: u's saved language; if none, the language of that request
// (its sign-in's ui_locales, else its Accept-Language: a person asking
// for a reset link from a German browser gets German), unless the
// request is someone else's (noteNotRecipient); else English.
func (h *Handler) mailTr(ctx context.Context, u storage.User) *i18n.Printer {
	c := h.cfg.Catalogs
	if u.Locale != "" {
		return c.Printer(c.Choose(i18n.Choice{Saved: u.Locale}))
	}
	var ch i18n.Choice
	if n, ok := ctx.Value(langKey{}).(*langNote); ok && !n.notMine {
		ch.UILocales, ch.AcceptLanguage = n.uiLocales, n.accept
	}
	return c.Printer(c.Choose(ch))
}

// noteNotRecipient marks the request in ctx as not the mail recipient's
// (an administrator's): its language does not choose the mail's.
func noteNotRecipient(ctx context.Context) {
	if n, ok := ctx.Value(langKey{}).(*langNote); ok {
		n.notMine = true
	}
}
