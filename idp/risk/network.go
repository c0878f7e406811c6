package risk

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
)

// Network returns the network an address is compared by for new_network and
// session drift: its /24 for IPv4 (IPv4-mapped IPv6 included, unmapped), its
// /48 for IPv6 (the usual site allocation, RFC 6177), zone dropped. An
// invalid address gives the zero Prefix.
func Network(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	bits := 48
	if ip.Is4() {
		bits = 24
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// earthRadiusKm is the mean Earth radius (IUGG).
const earthRadiusKm = 6371.0088

// DistanceKm is the great-circle distance between two points given in
// degrees, by the haversine formula on a spherical Earth (error under 0.5%,
// well within what CIDR→location data can tell).
func DistanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	rad := func(deg float64) float64 { return deg * math.Pi / 180 }
	dLat, dLon := rad(lat2-lat1), rad(lon2-lon1)
	h := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(rad(lat1))*math.Cos(rad(lat2))*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKm * math.Asin(math.Sqrt(min(1, h)))
}

// Prefixes is an operator IP list (deny or suspicious). The zero value and
// nil are empty lists. It is safe for concurrent use once built.
type Prefixes struct{ t table[struct{}] }

// ParsePrefixes builds a list from entries, each a CIDR ("203.0.113.0/24",
// "2001:db8::/32") or a single address. Host bits are cleared, IPv4-mapped
// IPv6 prefixes become IPv4 ones, and duplicates are harmless. It reports
// every bad entry at once (errors.Join).
func ParsePrefixes(entries []string) (*Prefixes, error) {
	var errs []error
	p := &Prefixes{}
	for i, e := range entries {
		pfx, err := parsePrefix(e)
		if err != nil {
			errs = append(errs, fmt.Errorf("risk: entry %d: %w", i+1, err))
			continue
		}
		p.t.add(pfx, struct{}{})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// Contains reports whether ip (IPv4-mapped addresses unmapped) lies in a
// prefix of the list.
func (p *Prefixes) Contains(ip netip.Addr) bool {
	if p == nil {
		return false
	}
	_, ok := p.t.lookup(ip)
	return ok
}

// Len is the number of distinct prefixes in the list.
func (p *Prefixes) Len() int {
	if p == nil {
		return 0
	}
	return len(p.t.m)
}

// parsePrefix reads a CIDR or a single address, normalised: host bits
// cleared, IPv4-mapped IPv6 turned into IPv4, so that it matches what
// table.lookup computes.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("bad CIDR %q", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("bad CIDR or address %q", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// table maps prefixes to values with longest-prefix lookup: one map probe per
// distinct prefix length present, longest first.
type table[V any] struct {
	m            map[netip.Prefix]V
	bits4, bits6 []int // distinct lengths present, longest first
}

// add stores v under the normalised prefix p; it reports false, and keeps
// the old value, when p is already present.
func (t *table[V]) add(p netip.Prefix, v V) bool {
	if _, dup := t.m[p]; dup {
		return false
	}
	if t.m == nil {
		t.m = make(map[netip.Prefix]V)
	}
	t.m[p] = v
	bits := &t.bits6
	if p.Addr().Is4() {
		bits = &t.bits4
	}
	if !slices.Contains(*bits, p.Bits()) {
		*bits = append(*bits, p.Bits())
		slices.SortFunc(*bits, func(a, b int) int { return b - a })
	}
	return true
}

func (t *table[V]) lookup(ip netip.Addr) (V, bool) {
	ip = ip.Unmap().WithZone("")
	bits := t.bits6
	if ip.Is4() {
		bits = t.bits4
	}
	for _, b := range bits {
		p, err := ip.Prefix(b)
		if err != nil {
			break
		}
		if v, ok := t.m[p]; ok {
			return v, true
		}
	}
	var zero V
	return zero, false
}
