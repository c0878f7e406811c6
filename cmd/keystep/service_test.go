package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// parseUnit reads a systemd unit: [Section] headers and Key=Value lines
// (repeatable keys keep every value); anything else fails the test.
func parseUnit(t *testing.T, text string) map[string]map[string][]string {
	t.Helper()
	units := map[string]map[string][]string{}
	var section string
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			units[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || k == "" || strings.ContainsAny(k, " \t") {
				t.Fatalf("line %d is not Key=Value in a section: %q", n+1, line)
			}
			units[section][k] = append(units[section][k], v)
		}
	}
	return units
}

// The unit parses, carries the hardening, and its ExecStart, with the
// directories systemd would give it, starts a server that reads the master
// key from the credential the unit loads.
func TestSystemdUnit(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		args := []string{"systemd-unit", "--addr", "127.0.0.1:0"}
		if tlsOn {
			args = append(args, "--tls")
		}
		text := mustKeystep(t, "", args...).stdout
		unit := parseUnit(t, text)
		systemdVerify(t, strings.Replace(text, "ExecStart=/usr/local/bin/keystep", "ExecStart=/bin/true", 1))
		svc := unit["Service"]
		for k, want := range map[string]string{
			"NoNewPrivileges": "yes", "ProtectSystem": "strict", "DynamicUser": "yes", "StateDirectory": "keystep",
			"PrivateTmp": "yes", "ProtectHome": "yes", "Restart": "on-failure", "KillSignal": "SIGTERM",
		} {
			if got := svc[k]; len(got) != 1 || got[0] != want {
				t.Errorf("%s=%v, want %s", k, got, want)
			}
		}
		if unit["Install"]["WantedBy"][0] != "multi-user.target" || unit["Unit"]["Description"] == nil {
			t.Errorf("unit %v", unit)
		}
		// Each credential: NAME:PATH; the key's name is the one serve reads.
		creds := map[string]string{}
		for _, c := range svc["LoadCredential"] {
			name, path, _ := strings.Cut(c, ":")
			creds[name] = path
		}
		if creds[masterKeyCredential] != "/etc/keystep/master.key" {
			t.Errorf("LoadCredential %v lacks %s", svc["LoadCredential"], masterKeyCredential)
		}
		cmdline := strings.Fields(svc["ExecStart"][0])
		if cmdline[0] != "/usr/local/bin/keystep" || cmdline[1] != "serve" {
			t.Fatalf("ExecStart %v", cmdline)
		}
		if !strings.Contains(svc["ExecStart"][0], "--master-key-file ${CREDENTIALS_DIRECTORY}/"+masterKeyCredential) {
			t.Errorf("ExecStart does not read the credential: %s", svc["ExecStart"][0])
		}

		// Run it as systemd would: the state and credentials directories.
		state, credDir := t.TempDir(), t.TempDir()
		os.WriteFile(filepath.Join(credDir, masterKeyCredential), []byte(strings.Repeat("5a", 32)+"\n"), 0o400)
		if tlsOn {
			writeCert(t, filepath.Join(credDir, "tls.crt"), filepath.Join(credDir, "tls.key"), 1)
		}
		var serveArgs []string
		for _, a := range cmdline[2:] {
			a = strings.ReplaceAll(a, "%S/keystep", state) // %S is /var/lib
			a = strings.ReplaceAll(a, "${CREDENTIALS_DIRECTORY}", credDir)
			a = strings.ReplaceAll(a, "127.0.0.1:9090", "127.0.0.1:0") // not the machine's port 9090
			serveArgs = append(serveArgs, a)
		}
		s := startLive(t, serveArgs...)
		if s.url != "https://id.example.com" || s.ops == "" {
			t.Errorf("serving %s, ops %q", s.url, s.ops)
		}
		noFile(t, filepath.Join(state, "master.key")) // the credential was used, not a new key
		s.stop()
	}
}

// systemdVerify has systemd check the unit, where systemd-analyze is
// installed.
func systemdVerify(t *testing.T, text string) {
	t.Helper()
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: the unit is checked by parseUnit only")
		return
	}
	p := filepath.Join(t.TempDir(), "keystep.service")
	os.WriteFile(p, []byte(text), 0o600)
	if out, err := exec.Command(tool, "verify", p).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The container recipe builds a static binary in one stage and runs it as
// a non-root user on a base with nothing else, with the data on a volume.
func TestContainerfile(t *testing.T) {
	b, err := os.ReadFile("../../Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	directives := map[string][]string{}
	for l := range strings.Lines(string(b)) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		word, rest, _ := strings.Cut(l, " ")
		directives[word] = append(directives[word], rest)
		if word == "FROM" {
			froms = append(froms, rest)
		}
	}
	if len(froms) != 2 || !strings.HasSuffix(froms[0], " AS build") {
		t.Fatalf("FROM %q: want a build stage and a final stage", froms)
	}
	if final := froms[1]; !strings.Contains(final, "distroless/static") && final != "scratch" {
		t.Errorf("final stage FROM %s: want distroless/static or scratch", final)
	}
	if !strings.Contains(strings.Join(directives["RUN"], "\n"), "CGO_ENABLED=0") {
		t.Error("the binary is not built with CGO_ENABLED=0")
	}
	user := directives["USER"]
	if len(user) != 1 || strings.HasPrefix(user[0], "0") || strings.HasPrefix(user[0], "root") {
		t.Errorf("USER %v: want a non-root user", user)
	}
	if len(directives["VOLUME"]) != 1 || !strings.Contains(strings.Join(directives["ENV"], " "), "KEYSTEP_DATA="+directives["VOLUME"][0]) {
		t.Errorf("VOLUME %v is not KEYSTEP_DATA (%v)", directives["VOLUME"], directives["ENV"])
	}
}
