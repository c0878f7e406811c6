package signin

import (
	"testing"
	"time"

	"github.com/keystep/keystep/idp/details"
	"github.com/keystep/keystep/idp/stepup"
	"github.com/keystep/keystep/storage"
)

func payment(t *testing.T, amount string) details.Details {
	t.Helper()
	d, err := details.Parse(`[{"type":"payment_initiation","instructedAmount":{"amount":"` + amount + `","currency":"EUR"},"creditorName":"Example Supplies Ltd"}]`)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTransactionDemand(t *testing.T) {
	reg := details.ExamplePayments(stepup.ACRMultiFactor, stepup.ACRPhishing)
	tests := []struct {
		name    string
		d       details.Details
		wantACR string
		wantAge int64
	}{
		{"a payment above EUR 1,000 needs phr within 5 minutes", payment(t, "1250.00"), stepup.ACRPhishing, 300},
		{"a small payment needs mfa within 15 minutes", payment(t, "12.50"), stepup.ACRMultiFactor, 900},
		{"no details demand nothing", nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acr, age, err := TransactionDemand(reg, tt.d, nil)
			if err != nil || acr != tt.wantACR || age != tt.wantAge {
				t.Errorf("TransactionDemand = %q, %d, %v; want %q, %d", acr, age, err, tt.wantACR, tt.wantAge)
			}
		})
	}

	t.Run("an alias is stored under the policy's canonical name", func(t *testing.T) {
		reg := details.ExamplePayments(stepup.PAPEMultiFactor, stepup.ACRPhishing)
		acr, _, err := TransactionDemand(reg, payment(t, "12.50"), nil)
		if err != nil || acr != stepup.ACRMultiFactor {
			t.Errorf("TransactionDemand = %q, %v; want %q", acr, err, stepup.ACRMultiFactor)
		}
	})
	t.Run("details whose rules demand nothing are still approved at the lowest level", func(t *testing.T) {
		reg, err := details.New(details.Config{Types: []details.Type{{Name: "note", Title: "Leave a note", Fields: []details.Field{{Path: "text", Label: "Note", Kind: details.KindText}}}}},
			func(string) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		d, err := details.Parse(`[{"type":"note","text":"hi"}]`)
		if err != nil {
			t.Fatal(err)
		}
		acr, age, err := TransactionDemand(reg, d, nil)
		if err != nil || acr != stepup.ACRSingleFactor || age != 0 {
			t.Errorf("TransactionDemand = %q, %d, %v; want %q, 0", acr, age, err, stepup.ACRSingleFactor)
		}
	})
	t.Run("a demand the acr policy does not know is refused, not dropped", func(t *testing.T) {
		reg := details.ExamplePayments(stepup.ACRMultiFactor, "gold")
		if acr, _, err := TransactionDemand(reg, payment(t, "1250.00"), nil); err == nil {
			t.Errorf("TransactionDemand = %q, nil; want an error", acr)
		}
	})
}

func TestInputOfTransaction(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ar := storage.AuthRequest{CreatedAt: t0, Requirement: storage.Requirement{TransactionMin: stepup.ACRPhishing, TransactionMaxAge: 300}}
	in := InputOf(ar, t0)
	if in.TransactionMin != stepup.ACRPhishing || in.TransactionMaxAge == nil || *in.TransactionMaxAge != 5*time.Minute {
		t.Errorf("InputOf: TransactionMin %q, TransactionMaxAge %v", in.TransactionMin, in.TransactionMaxAge)
	}
	ar.Requirement.TransactionMaxAge = 0
	if in := InputOf(ar, t0); in.TransactionMaxAge != nil {
		t.Errorf("InputOf: a zero max age became %v", *in.TransactionMaxAge)
	}
}
