package signin

import (
	"slices"
	"time"

	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/login/factor"
	"github.com/keystep/keystep/storage"
)

// FactorsOf converts the session's factor events for stepup.
//
// request is the authorization request being decided ("" for none): the
// factors done for it are marked ForRequest.
func FactorsOf(events []storage.FactorEvent, request string) []stepup.Factor {
	out := make([]stepup.Factor, 0, len(events))
	for _, e := range events {
		out = append(out, stepup.Factor{Method: stepup.Method(e.Method), At: e.At, UserVerified: e.UserVerified, DeviceBound: e.DeviceBound, Provisional: e.Provisional,
			ForRequest: request != "" && e.Request == request})
	}
	return out
}

// Enrolled lists what the user can complete. WebAuthn credentials are
// summarised in two entries: those phr says may count toward phr and phrh
// (nil: the trusted ones), and the provisional rest (DESIGN §3.3).
func Enrolled(u storage.User, factors []storage.Factor, recoveryLeft int, phr func(storage.Factor) bool) []stepup.Enrolled {
	if phr == nil {
		phr = factor.Trusted
	}
	var out []stepup.Enrolled
	if u.PasswordHash != "" {
		out = append(out, stepup.Enrolled{Method: stepup.Password})
	}
	if slices.ContainsFunc(factors, func(f storage.Factor) bool { return f.Kind == storage.FactorTOTP }) {
		out = append(out, stepup.Enrolled{Method: stepup.TOTP})
	}
	var wa [2]*stepup.Enrolled // trusted, provisional
	for _, f := range factors {
		if f.Kind != storage.FactorWebAuthn {
			continue
		}
		c, err := factor.ReadCredentialFlags(f.Secret)
		if err != nil || c.CloneWarning {
			continue // a corrupt or blocked credential cannot be completed
		}
		i := 0
		if !phr(f) {
			i = 1
		}
		if wa[i] == nil {
			wa[i] = &stepup.Enrolled{Method: stepup.WebAuthn, Provisional: i == 1}
		}
		wa[i].DeviceBound = wa[i].DeviceBound || !c.BackupEligible
		wa[i].UserVerifying = wa[i].UserVerifying || c.UserVerified
	}
	for _, e := range wa {
		if e != nil {
			out = append(out, *e)
		}
	}
	if recoveryLeft > 0 {
		out = append(out, stepup.Enrolled{Method: stepup.Recovery})
	}
	return out
}

// InputOf is the part of a decision's input an authorization request
// gives: its stored requirement (what its authorization details demand
// included), max_age and prompt, and when it was made.
// The session's factors, the user's enrolled ones and risk are the
// caller's to add.
func InputOf(ar storage.AuthRequest, now time.Time) stepup.Input {
	req := ar.Requirement
	return stepup.Input{
		Requested: req.ACR,
		Essential: req.Essential,
		Strict:    req.Strict,
		ClientMin: req.ClientMin,
		ScopeMins: req.ScopeMins,
		MaxAge:    maxAgeOf(ar),
		// What the authorization details demand (TransactionDemand, at
		// /authorize): one more floor, and a fresh approval.
		TransactionMin:    req.TransactionMin,
		TransactionMaxAge: transactionMaxAgeOf(req),
		PromptLogin:       slices.Contains(ar.Prompt, "login"),
		PromptNone:        slices.Contains(ar.Prompt, "none"),
		RequestTime:       ar.CreatedAt,
		Now:               now,
	}
}

// RaiseFloors raises the floors of in, read from the stored requirement
// (what applied at /authorize), to the client's and the requested scopes'
// floors as they are now: an administrator who raises a client's minimum
// or makes it strict while a sign-in is under way expects the change to
// hold from then on, and nothing lowers the target (DESIGN §3.3). A floor
// lowered since keeps the stored, higher one. A current floor the policy
// does not know replaces the stored one, so Decide fails the request
// closed (unmet_authentication_requirements) as it does at /authorize.
func RaiseFloors(in *stepup.Input, p *stepup.Policy, c storage.Client, scopeFloors []string) {
	in.Strict = in.Strict || c.Strict
	if c.MinACR != "" && c.MinACR != in.ClientMin {
		now, _, okNow := p.Lookup(c.MinACR)
		was, _, okWas := p.Lookup(in.ClientMin)
		if !okNow || okWas && now > was || in.ClientMin == "" {
			in.ClientMin = c.MinACR
		}
	}
	for _, m := range scopeFloors {
		if !slices.Contains(in.ScopeMins, m) {
			in.ScopeMins = append(in.ScopeMins, m)
		}
	}
}

// transactionMaxAgeOf converts the stored transaction max age (seconds, 0
// for none).
func transactionMaxAgeOf(req storage.Requirement) *time.Duration {
	if req.TransactionMin == "" || req.TransactionMaxAge <= 0 {
		return nil
	}
	d := time.Duration(req.TransactionMaxAge) * time.Second
	return &d
}

// maxAgeOf converts the stored max_age.
func maxAgeOf(ar storage.AuthRequest) *time.Duration {
	if ar.MaxAge == nil {
		return nil
	}
	d := time.Duration(*ar.MaxAge) * time.Second
	return &d
}
