package risk

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxLineErrors bounds how many problems ParseLocations lists one by one;
// past it the file is most likely not a location table at all.
const maxLineErrors = 100

// Locations is an operator CIDR→location table for impossible travel. A nil
// *Locations is an empty table. It is safe for concurrent use once built.
type Locations struct{ t table[Location] }

// ParseLocations reads a location table: one entry per line,
//
//	cidr,lat,lon[,place]
//
// with the CIDR (or a single address) normalised as in [ParsePrefixes],
// latitude and longitude in degrees, and an optional place name for people
// (quote it if it contains a comma: 198.51.100.0/24,48.86,2.35,"Paris, FR").
// Blank lines, lines starting with # and header lines (first field "cidr")
// are skipped; a UTF-8 byte order mark is ignored.
//
// It reports every problem at once (errors.Join; past 100, only a count): bad CIDR, latitude outside −90..90, longitude outside −180..180,
// wrong number of fields, a place that is not UTF-8, a CIDR listed twice.
// Reading stops at the first I/O error, which is returned with the rest.
func ParseLocations(r io.Reader) (*Locations, error) {
	l := &Locations{}
	var errs []error
	bad := 0
	fail := func(n int, format string, args ...any) {
		bad++
		if bad <= maxLineErrors {
			errs = append(errs, fmt.Errorf("risk: locations line %d: %s", n, fmt.Sprintf(format, args...)))
		}
	}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cr := csv.NewReader(strings.NewReader(line))
		cr.FieldsPerRecord = -1
		cr.TrimLeadingSpace = true
		rec, err := cr.Read()
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			fail(n, "%v", err)
			continue
		}
		if strings.EqualFold(strings.TrimSpace(rec[0]), "cidr") {
			continue // a header; files joined with cat may carry several
		}
		if len(rec) != 3 && len(rec) != 4 {
			fail(n, "%d fields, want cidr,lat,lon[,place]", len(rec))
			continue
		}
		p, err := parsePrefix(rec[0])
		if err != nil {
			fail(n, "%v", err)
		}
		lat, latErr := parseDegrees(rec[1], 90)
		if latErr != nil {
			fail(n, "latitude %v", latErr)
		}
		lon, lonErr := parseDegrees(rec[2], 180)
		if lonErr != nil {
			fail(n, "longitude %v", lonErr)
		}
		var place string
		if len(rec) == 4 {
			place = strings.TrimSpace(rec[3])
			if !utf8.ValidString(place) {
				fail(n, "place is not valid UTF-8")
			}
		}
		if err != nil || latErr != nil || lonErr != nil || !utf8.ValidString(place) {
			continue
		}
		if !l.t.add(p, Location{Lat: lat, Lon: lon, Place: place}) {
			fail(n, "%s is listed twice", p)
		}
	}
	if bad > maxLineErrors {
		errs = append(errs, fmt.Errorf("risk: locations: %d more problems", bad-maxLineErrors))
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("risk: locations: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return l, nil
}

// parseDegrees reads a finite angle in −limit..limit.
func parseDegrees(s string, limit float64) (float64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < -limit || v > limit {
		return 0, fmt.Errorf("%v is outside -%v..%v", v, limit, limit)
	}
	return v, nil
}

// Lookup returns the location of the most specific prefix containing ip
// (IPv4-mapped addresses unmapped).
func (l *Locations) Lookup(ip netip.Addr) (Location, bool) {
	if l == nil {
		return Location{}, false
	}
	return l.t.lookup(ip)
}

// Len is the number of entries in the table.
func (l *Locations) Len() int {
	if l == nil {
		return 0
	}
	return len(l.t.m)
}
