package risk

import (
	"math"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	rules := func(change func(*Rules)) Rules {
		r := DefaultRules()
		change(&r)
		return r
	}
	tests := []struct {
		name  string
		rules Rules
		want  []string // substrings, one per reported problem; none for valid rules
	}{
		{
			name:  "the default rules are valid",
			rules: DefaultRules(),
		},
		{
			name: "zero rules report every problem at once",
			want: []string{
				`no weight for signal "first_sign_in"`, `no weight for signal "sensitive_scope"`,
				"medium threshold 0 must be at least 1", "high threshold 0 must be above medium threshold 0",
				"min account failures is 0", "min IP failures is 0", "min IP usernames is 0",
				"max travel speed 0 km/h",
			},
		},
		{
			name: "a weight for an unknown signal, a negative weight and one above the maximum",
			rules: rules(func(r *Rules) {
				r.Weights["new_phone"] = 10
				r.Weights[NewDevice] = -1
				r.Weights[IPDenied] = MaxWeight + 1
			}),
			want: []string{`weight for unknown signal "new_phone"`, "weight -1 for new_device is out of range", "weight 1001 for ip_denied is out of range"},
		},
		{
			name:  "a missing weight is a problem, not a silent zero",
			rules: rules(func(r *Rules) { delete(r.Weights, SessionDrift) }),
			want:  []string{`no weight for signal "session_drift"`},
		},
		{
			name:  "medium equal to high leaves no medium band",
			rules: rules(func(r *Rules) { r.Medium, r.High = 50, 50 }),
			want:  []string{"high threshold 50 must be above medium threshold 50"},
		},
		{
			name:  "medium above high",
			rules: rules(func(r *Rules) { r.Medium, r.High = 90, 80 }),
			want:  []string{"high threshold 80 must be above medium threshold 90"},
		},
		{
			name: "a low band that denies, an action that denies and sets a floor, hard without a floor",
			rules: rules(func(r *Rules) {
				r.OnLow = Action{Deny: true}
				r.OnMedium = Action{Floor: FloorMultiFactor, Deny: true}
				r.OnHigh = Action{Hard: true}
			}),
			want: []string{"low band: deny would refuse every sign-in", "medium band: an action denies or sets a floor, not both", "high band: hard needs a floor"},
		},
		{
			name:  "a floor with a space cannot be an acr value",
			rules: rules(func(r *Rules) { r.OnHigh.Floor = "phr h" }),
			want:  []string{`high band: floor "phr h" contains whitespace`},
		},
		{
			name: "travel limits that are not numbers, or negative",
			rules: rules(func(r *Rules) {
				r.MaxTravelKmh = math.NaN()
				r.MinTravelKm = -1
			}),
			want: []string{"max travel speed NaN km/h", "min travel distance -1 km"},
		},
		{
			name:  "an infinite travel speed",
			rules: rules(func(r *Rules) { r.MaxTravelKmh = math.Inf(1) }),
			want:  []string{"max travel speed +Inf km/h"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rules.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %d problems", len(tt.want))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v\nwant a problem containing %q", err, w)
				}
			}
		})
	}
}

// TestDefaultRulesIsACopy: changing one caller's rules never changes
// another's.
func TestDefaultRulesIsACopy(t *testing.T) {
	r := DefaultRules()
	r.Weights[NewDevice] = 0
	if got := DefaultRules().Weights[NewDevice]; got != 25 {
		t.Errorf("DefaultRules().Weights[new_device] = %d after a caller changed its copy, want 25", got)
	}
}
