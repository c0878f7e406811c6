// Package details is Rich Authorization Requests (RFC 9396): what a person
// approves when a step-up is about a transaction, and how that approval is
// checked, shown, demanded, hashed and bound to a WebAuthn assertion.
//
// Everything here is pure: no I/O, no clock, no logging, standard library
// only (deps_test.go). The integration — the authorize, PAR and token
// endpoints, the step-up page, the tokens, the audit record and
// idp/resource — calls it.
//
// # Flow
//
//  1. [Parse] the authorization_details parameter. Any error is an *[Error]:
//     answer with the OAuth error [ErrorCode] (invalid_authorization_details)
//     and its Description.
//  2. [Registry.Check] it against the policy and the types the client is
//     registered for; same error.
//  3. [Registry.Demands] are the authentication the objects need (for
//     example phr within 5 minutes for a payment above EUR 1,000);
//     [Strictest] folds them into one acr and max_age that the step-up
//     decision raises its target to. Nothing here lowers a target.
//  4. [Registry.Display] is what the step-up page shows before the factor
//     is used: a title and labelled plain-text lines per object. Consent to
//     authorization details is never remembered.
//  5. For a passkey or security key, the WebAuthn challenge is
//     [Challenge](details, nonce): the assertion then signs these exact
//     details. [VerifyChallenge] checks it, at the time and later from the
//     audit record. A TOTP code cannot commit to anything; the page shows
//     the details and the audit records them, no more.
//  6. Tokens carry the approved details ([Details.MarshalJSON] writes the
//     canonical form). A token or refresh request may name fewer of them,
//     never others: [Narrows].
//  7. A resource server checks that the token's details allow what it is
//     about to do: [Covers] (mirrored in idp/resource; both pass
//     testdata/covers.json).
//
// # Canonical form
//
// [Details.Canonical] is RFC 8785 (JSON Canonicalization Scheme) and
// [Details.Hash] its SHA-256. Key order, whitespace, escapes and the
// spelling of numbers do not change it; any change of a value does. Numbers
// are kept as the client wrote them (json.Number) and [Parse] refuses any
// the canonical form (IEEE 754 doubles) would change, so amounts never lose
// a digit silently; large or very precise amounts belong in strings.
//
// # Policy
//
// The policy is part of the config file (JSON, or YAML converted to JSON)
// and is read into a [Config]; [Config.Validate] lists every problem at
// once and [New] builds the [Registry]. A type names the fields shown to
// the person (dot paths into the object, each with a label and a [Kind]:
// text, amount, currency, account, iban, date or list), the fields that
// must be present, the actions allowed, and rules: the minimum acr and
// max_age, unconditionally or when an amount is above a threshold in a
// currency. The example policy ([ExampleConfig]) as YAML:
//
//	types:
//	  - name: payment_initiation
//	    title: Pay an invoice
//	    fields:
//	      - {path: instructedAmount.amount, label: Amount, kind: amount, currency: instructedAmount.currency}
//	      - {path: instructedAmount.currency, label: Currency, kind: currency}
//	      - {path: creditorName, label: To, kind: text}
//	      - {path: creditorAccount.iban, label: Account, kind: iban}
//	      - {path: remittanceInformationUnstructured, label: Reference, kind: text}
//	    required: [instructedAmount.amount, instructedAmount.currency, creditorName]
//	    actions: [initiate, status, cancel]
//	    rules:
//	      - {min_acr: "urn:keystep:acr:mfa", max_age: 15m}
//	      - if: {path: instructedAmount.amount, above: "1000", currency: EUR}
//	        min_acr: phr
//	        max_age: 5m
//	        reason: Payments above EUR 1,000 need a passkey or security key
//	  - name: account_change
//	    title: Change the payout account
//	    fields:
//	      - {path: account.iban, label: New account, kind: iban}
//	      - {path: account.holder, label: Account holder, kind: text}
//	      - {path: effective, label: From, kind: date}
//	    required: [account.iban, account.holder]
//	    actions: [update]
//	    allow_other_fields: true
//	    rules:
//	      - {min_acr: phr, max_age: 5m}
//
// Rules of the format, enforced by [Config.Validate]:
//   - names are unique and have no spaces; every type has a title, every
//     field a label and a known kind; a field path is not inside another;
//   - required paths are fields (nothing required is hidden);
//   - a rule sets min_acr (a configured level), max_age (a Go duration,
//     not negative) or both;
//   - a condition's path is a required amount field; above is a plain
//     decimal ("1000", "1000.00": the same; no sign, exponent or NaN);
//     when the amount has a currency field, the condition names the
//     threshold's currency and the currency field is required too. An
//     amount in another currency makes the condition hold: there are no
//     exchange rates here, so it fails closed;
//   - above is strict: EUR 1,000.00 is not above EUR 1,000.
//
// Without allow_other_fields an object with a field outside the type's
// fields is refused (RFC 9396 §5); the RFC 9396 §2.2 common fields
// (locations, actions, datatypes, identifier, privileges) are always
// allowed and, unless listed as fields, counted as not shown.
//
// Which types a client may use is the client's registration (storage);
// [Registry.Check] takes that list. Discovery's
// authorization_details_types_supported is [Registry.Types].
package details
