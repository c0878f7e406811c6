package stepup

import "slices"

// AMR maps factors to amr claim values (RFC 8176 §2, plus "pop" from OpenID
// Connect EAP ACR Values), deduplicated and sorted alphabetically:
//
//	pwd       → pwd
//	totp      → otp
//	recovery  → otp  (RFC 8176 has no look-up-secret value; otp is the nearest)
//	webauthn  → pop, plus hwk if device-bound else swk, plus user if UV was done
//
// and mfa when the factors span knowledge and possession (a password with any
// other factor) or include a user-verified WebAuthn, which is a multi-factor
// authenticator by itself (NIST SP 800-63B §4.2.1). Two possession factors
// are not mfa. Unknown methods are ignored; no known factor gives nil.
func AMR(factors []Factor) []string {
	var out []string
	knowledge, possession, mfa := false, false, false
	for _, f := range factors {
		switch f.Method {
		case Password:
			knowledge = true
			out = append(out, "pwd")
		case TOTP, Recovery:
			possession = true
			out = append(out, "otp")
		case WebAuthn:
			possession = true
			out = append(out, "pop")
			if f.DeviceBound {
				out = append(out, "hwk")
			} else {
				out = append(out, "swk")
			}
			if f.UserVerified {
				mfa = true
				out = append(out, "user")
			}
		}
	}
	if knowledge && possession || mfa {
		out = append(out, "mfa")
	}
	slices.Sort(out)
	return slices.Compact(out)
}
