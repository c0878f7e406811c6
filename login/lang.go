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
	// chosen is the printer chosen from what is noted so far; a note
	// clears it, and tr chooses again on its next call.
	chosen *i18n.Printer
}

type langKey struct{}

// withLangNote returns r carrying an empty langNote.
func withLangNote(r *http.Request) *http.Request {
	if _, ok := r.Context().Value(langKey{}).(*langNote); ok {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), langKey{}, &langNote{}))
}

// noteUILocales records the sign-in's ui_locales for the page's language.
func noteUILocales(ctx context.Context, l []string) {
	if n, ok := ctx.Value(langKey{}).(*langNote); ok {
		n.uiLocales, n.chosen = l, nil
	}
}

// noteSaved records the account's saved language ("" for none).
func noteSaved(ctx context.Context, lang string) {
	if n, ok := ctx.Value(langKey{}).(*langNote); ok {
		n.saved, n.chosen = lang, nil
	}
}

// tr returns the printer for r's language, as far as r has revealed it;
// chosen once per request and note, however many texts a page says.
func (h *Handler) tr(r *http.Request) *i18n.Printer {
	ch := i18n.Choice{AcceptLanguage: r.Header.Get("Accept-Language")}
	n, ok := r.Context().Value(langKey{}).(*langNote)
	if ok && n.chosen != nil {
		return n.chosen
	}
	if ok {
		ch.UILocales, ch.Saved = n.uiLocales, n.saved
	}
	p := h.cfg.Catalogs.Printer(h.cfg.Catalogs.Choose(ch))
	if ok {
		n.chosen = p
	}
	return p
}

// mailTr returns the printer of an email to u: u's saved language, else
// English. Never the language of the request that caused it: that may be
// anyone's (a reset link is asked for by name, a new sign-in notice is
// caused by whoever signed in), and whoever it is must not choose the
// language a warning to u is written in.
func (h *Handler) mailTr(u storage.User) *i18n.Printer {
	c := h.cfg.Catalogs
	return c.Printer(c.Choose(i18n.Choice{Saved: u.Locale}))
}
