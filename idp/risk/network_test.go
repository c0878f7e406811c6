package risk

import (
	"math"
	"net/netip"
	"strings"
	"testing"
)

func TestNetwork(t *testing.T) {
	tests := []struct {
		name string
		ip   string // "" for the zero Addr
		want string // "" for the zero Prefix
	}{
		{"IPv4 is compared by its /24", "192.0.2.77", "192.0.2.0/24"},
		{"IPv4-mapped IPv6 is unmapped, then /24", "::ffff:192.0.2.77", "192.0.2.0/24"},
		{"IPv6 is compared by its /48", "2001:db8:abcd:12::1", "2001:db8:abcd::/48"},
		{"an IPv6 zone is dropped", "fe80::1%eth0", "fe80::/48"},
		{"the zero address has no network", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ip netip.Addr
			if tt.ip != "" {
				ip = netip.MustParseAddr(tt.ip)
			}
			var want netip.Prefix
			if tt.want != "" {
				want = netip.MustParsePrefix(tt.want)
			}
			if got := Network(ip); got != want {
				t.Errorf("Network(%s) = %v, want %v", tt.ip, got, want)
			}
		})
	}
}

func TestDistanceKm(t *testing.T) {
	tests := []struct {
		name            string
		a, b            Location
		want, tolerance float64
	}{
		{"London to Paris is about 344 km", london, paris, 344, 5},
		{"London to New York is about 5570 km", london, newYork, 5570, 10},
		{"a point to itself is 0 km", paris, paris, 0, 1e-9},
		{"antipodes are half the circumference", Location{Lat: 0, Lon: 0}, Location{Lat: 0, Lon: 180}, math.Pi * earthRadiusKm, 1e-6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DistanceKm(tt.a.Lat, tt.a.Lon, tt.b.Lat, tt.b.Lon)
			if math.Abs(got-tt.want) > tt.tolerance {
				t.Errorf("DistanceKm = %.3f, want %.0f ± %v", got, tt.want, tt.tolerance)
			}
			if back := DistanceKm(tt.b.Lat, tt.b.Lon, tt.a.Lat, tt.a.Lon); math.Abs(back-got) > 1e-9 {
				t.Errorf("DistanceKm is not symmetric: %v and %v", got, back)
			}
		})
	}
}

func TestPrefixes(t *testing.T) {
	p, err := ParsePrefixes([]string{"203.0.113.0/24", " 198.51.100.7 ", "10.9.9.9/8", "2001:db8::/32", "::ffff:192.0.2.0/120", "203.0.113.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Len(); got != 5 {
		t.Errorf("Len() = %d, want 5 (the duplicate counted once)", got)
	}
	for ip, want := range map[string]bool{
		"203.0.113.200":       true,
		"::ffff:203.0.113.1":  true, // mapped address, IPv4 list entry
		"198.51.100.7":        true, // single address
		"198.51.100.8":        false,
		"10.200.0.1":          true, // host bits cleared
		"2001:db8:1::1":       true,
		"2001:db9::1":         false,
		"192.0.2.9":           true, // mapped entry, plain address
		"fe80::1%eth0":        false,
		"2001:db8::1%eth0":    true, // zone dropped
		"255.255.255.255":     false,
		"::ffff:198.51.100.7": true,
	} {
		if got := p.Contains(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", ip, got, want)
		}
	}
	if (*Prefixes)(nil).Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Error("a nil list contains an address")
	}
	if new(Prefixes).Contains(netip.Addr{}) {
		t.Error("an empty list contains the zero address")
	}

	_, err = ParsePrefixes([]string{"192.0.2.0/33", "", "example.com", "fe80::1%eth0", "10.0.0.0/8"})
	if err == nil {
		t.Fatal("ParsePrefixes accepted bad entries")
	}
	for _, want := range []string{`entry 1: bad CIDR "192.0.2.0/33"`, `entry 2: bad CIDR or address ""`, `entry 3: bad CIDR or address "example.com"`, `entry 4: bad CIDR or address "fe80::1%eth0"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePrefixes error = %v\nwant it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "entry 5") {
		t.Errorf("ParsePrefixes reported a good entry: %v", err)
	}
}
