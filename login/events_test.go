package login

import (
	"slices"
	"testing"

	"github.com/keystep/keystep/login/i18n"
	"github.com/keystep/keystep/storage"
)

// withoutPortalText are the event types the portal has no plain words for,
// each for a reason; the console shows every type under its stored name. A
// new event type needs a text in eventTexts or a line here.
var withoutPortalText = map[storage.EventType]string{
	storage.EventLoginThrottled:          "refused before an account is known; carries no user",
	storage.EventStepupRequested:         "a step inside a sign-in; login.completed or login.failed says how it ended",
	storage.EventStepupThrottled:         "a step inside a sign-in, refused before the code was checked",
	storage.EventSessionEnded:            "a risk rule's decision or a switch of account in a browser, explained on the page at the time",
	storage.EventTokenIssued:             "one per token request; the sign-in itself is login.completed",
	storage.EventTokenCodeReplayed:       "the client's code presented twice; nothing the user can act on",
	storage.EventTokenRevoked:            "an app revoking its own token",
	storage.EventTokenRefreshRefused:     "an app told to sign the person in again; the next sign-in explains itself",
	storage.EventAdminBenchProvisioned:   "the benchmark's setup; about no user",
	storage.EventAdminAPIRead:            "automation reading through the admin API; about no one user",
	storage.EventAuditCheckpoint:         "the log's own checkpoint; about no user",
	storage.EventOutboxGaveUp:            "an app's endpoint failing; the console's delivery status shows it",
	storage.EventOutboxRequeued:          "an admin resending to an app; nothing the user did",
	storage.EventSSFStream:               "an app managing its event stream; about no user",
	storage.EventSSFRefused:              "a security event refused before it was trusted; not the user's doing",
	storage.EventAdminSSFReceiverAdded:   "an operator registering a transmitter; about no user",
	storage.EventAdminSSFReceiverDeleted: "an operator removing a transmitter; about no user",
}

func TestEveryEventTypeHasAPortalTextOrAReasonNot(t *testing.T) {
	for _, e := range storage.EventTypes() {
		text, named := eventTexts[e]
		_, exempt := withoutPortalText[e]
		switch {
		case named && exempt:
			t.Errorf("%s has the portal text %q and is listed as having none", e, text)
		case !named && !exempt:
			t.Errorf("%s has no portal text: add one to eventTexts, or a reason to withoutPortalText", e)
		}
	}
	for e := range eventTexts {
		if !slices.Contains(storage.EventTypes(), e) {
			t.Errorf("eventTexts names %q, which is not a storage.EventType constant", e)
		}
	}
	for e := range withoutPortalText {
		if !slices.Contains(storage.EventTypes(), e) {
			t.Errorf("withoutPortalText names %q, which is not a storage.EventType constant", e)
		}
	}
}

func TestEventTextSaysWhatHappenedAndWhetherItFailed(t *testing.T) {
	for _, tt := range []struct {
		name string
		e    storage.AuditEvent
		want string
	}{
		{"a named event", storage.AuditEvent{Type: storage.EventFactorEnrolled, Outcome: "success"}, "Added a way to sign in"},
		{"a failed one, with its app", storage.AuditEvent{Type: storage.EventStepupFactor, Outcome: "failure", ClientID: "payroll"}, "Extra check (failed) · payroll"},
		{"an event without a text keeps its stored name", storage.AuditEvent{Type: storage.EventTokenIssued, Outcome: "success", ClientID: "payroll"}, "token.issued · payroll"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := eventText(english(t), tt.e); got != tt.want {
				t.Errorf("eventText = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPortalActivityListsEveryTypeWithWords(t *testing.T) {
	if got, want := len(activityTypes), len(eventTexts); got != want {
		t.Errorf("activityTypes has %d types, eventTexts %d", got, want)
	}
	for _, e := range activityTypes {
		if _, ok := eventTexts[e]; !ok {
			t.Errorf("activityTypes lists %s, which has no portal text", e)
		}
	}
}

// english is the built-in catalogs' English printer.
func english(t *testing.T) *i18n.Printer {
	t.Helper()
	cats, err := i18n.Load(i18n.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cats.Printer(i18n.English)
}
