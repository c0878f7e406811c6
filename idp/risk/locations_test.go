package risk

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func TestParseLocations(t *testing.T) {
	const table = "\uFEFFcidr,lat,lon,place\n" +
		"# operator locations\n" +
		"\n" +
		"10.0.0.0/8, 51.5074, -0.1278, \"London, GB\"\n" +
		"10.1.0.0/16,48.8566,2.3522,Paris\n" +
		"10.1.2.3,40.7128,-74.0060,New York\n" +
		"2001:db8::/32,35.6762,139.6503,Tokyo\n" +
		"2001:db8:1::/48,-33.8688,151.2093\n" +
		"::ffff:192.0.2.0/120,0,0,Null Island\n"

	l, err := ParseLocations(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Len(); got != 6 {
		t.Errorf("Len() = %d, want 6", got)
	}
	tests := []struct {
		ip   string
		want string // place; "-" for not found, "?" for a location with no place
	}{
		{"10.1.2.3", "New York"}, // the single address beats its /16 and /8
		{"10.1.2.4", "Paris"},    // the /16 beats the /8
		{"10.200.0.1", "London, GB"},
		{"::ffff:10.1.9.9", "Paris"}, // IPv4-mapped looks up as IPv4
		{"11.0.0.1", "-"},
		{"2001:db8:1:2::5", "?"}, // the /48 beats the /32
		{"2001:db8:2::5", "Tokyo"},
		{"2001:db9::1", "-"},
		{"192.0.2.55", "Null Island"}, // an IPv4-mapped entry matches plain IPv4
	}
	for _, tt := range tests {
		loc, ok := l.Lookup(netip.MustParseAddr(tt.ip))
		got := loc.Place
		switch {
		case !ok:
			got = "-"
		case got == "":
			got = "?"
		}
		if got != tt.want {
			t.Errorf("Lookup(%s) = %q, want %q", tt.ip, got, tt.want)
		}
	}
	loc, _ := l.Lookup(netip.MustParseAddr("10.200.0.1"))
	if diff := cmp.Diff(Location{Lat: 51.5074, Lon: -0.1278, Place: "London, GB"}, loc); diff != "" {
		t.Errorf("Lookup mismatch (-want +got):\n%s", diff)
	}
	if _, ok := (*Locations)(nil).Lookup(netip.MustParseAddr("10.0.0.1")); ok {
		t.Error("a nil table found a location")
	}
}

func TestParseLocationsEmpty(t *testing.T) {
	l, err := ParseLocations(strings.NewReader("# nothing yet\n\ncidr,lat,lon,place\n"))
	if err != nil || l.Len() != 0 {
		t.Fatalf("ParseLocations(header only) = %v entries, %v; want 0, nil", l.Len(), err)
	}
}

// TestParseLocationsBadLines: every bad line is reported at once, with its
// line number, and good lines are not.
func TestParseLocationsBadLines(t *testing.T) {
	const table = "10.0.0.0/8,51.5,-0.12,London\n" + // 1 good
		"10.0.0.0/33,1,2,x\n" + // 2
		"10.2.0.0/16,91,0,x\n" + // 3
		"10.3.0.0/16,0,-180.5,x\n" + // 4
		"10.4.0.0/16,north,east,x\n" + // 5
		"10.5.0.0/16,1\n" + // 6
		"10.6.0.0/16,1,2,x,y\n" + // 7
		"10.0.0.0/8,1,2,again\n" + // 8
		"10.7.0.0/16,1,2,a\"b\n" + // 9
		"10.8.0.0/16,1,2,\xff\n" + // 10
		"CIDR,lat,lon\n" + // 11: another header, skipped
		"10.9.0.0/16,NaN,Inf,x\n" // 12

	_, err := ParseLocations(strings.NewReader(table))
	if err == nil {
		t.Fatal("ParseLocations accepted bad lines")
	}
	want := []string{
		`line 2: bad CIDR "10.0.0.0/33"`,
		"line 3: latitude 91 is outside -90..90",
		"line 4: longitude -180.5 is outside -180..180",
		`line 5: latitude "north" is not a number`,
		`line 5: longitude "east" is not a number`,
		"line 6: 2 fields, want cidr,lat,lon[,place]",
		"line 7: 5 fields",
		"line 8: 10.0.0.0/8 is listed twice",
		`line 9: bare "`,
		"line 10: place is not valid UTF-8",
		`line 12: latitude "NaN" is not a number`,
		`line 12: longitude "Inf" is not a number`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error = %v\nwant it to contain %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "line 1:") {
		t.Errorf("a good line was reported: %v", err)
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", n, len(want), err)
	}
}

func TestParseLocationsManyBadLines(t *testing.T) {
	var b strings.Builder
	for i := range 150 {
		fmt.Fprintf(&b, "not-a-cidr-%d,0,0\n", i)
	}
	_, err := ParseLocations(strings.NewReader(b.String()))
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxLineErrors+1 || !strings.Contains(lines[len(lines)-1], "50 more problems") {
		t.Errorf("got %d lines ending %q; want %d listed and a count of the other 50", len(lines), lines[len(lines)-1], maxLineErrors)
	}
}

func TestParseLocationsReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := ParseLocations(iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Errorf("ParseLocations(failing reader) = %v, want it to wrap %v", err, boom)
	}
}
