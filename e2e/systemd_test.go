package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// unitDir holds the sample systemd units, seen from the module root.
const unitDir = "scripts/systemd"

// unitSetting is one KEY=VALUE of a unit file, in its section.
type unitSetting struct{ section, key, value string }

// readUnit returns the settings of a unit file in order, comments left out.
func readUnit(t *testing.T, path string) []unitSetting {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []unitSetting
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s: line %q is no KEY=VALUE", path, l)
			}
			out = append(out, unitSetting{section, k, v})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantService are the [Service] settings every unit must have, with
// NAME for the daemon's name: readiness (and an upgrade's new main
// process) notified, a dedicated user, state and logs in their own
// folders, the configuration read-only, reload by SIGHUP, and the
// hardening.
var wantService = [][2]string{
	{"Type", "notify"},
	{"NotifyAccess", "all"},
	{"User", "relaychain"},
	{"Group", "relaychain"},
	{"StateDirectory", "relaychain/%i"},
	{"LogsDirectory", "relaychain/%i"},
	{"WorkingDirectory", "/var/lib/relaychain/%i"},
	{"ExecStartPre", "/usr/local/bin/NAME check --config /etc/relaychain/%i/NAME.yaml"},
	{"ExecStart", "/usr/local/bin/NAME --config /etc/relaychain/%i/NAME.yaml"},
	{"ExecReload", "/bin/kill -HUP $MAINPID"},
	{"NoNewPrivileges", "yes"},
	{"CapabilityBoundingSet", ""},
	{"AmbientCapabilities", ""},
	{"ProtectSystem", "strict"},
	{"ReadWritePaths", "/var/lib/relaychain/%i /var/log/relaychain/%i"},
	{"ProtectHome", "yes"},
	{"PrivateTmp", "yes"},
	{"PrivateDevices", "yes"},
	{"ProtectKernelTunables", "yes"},
	{"ProtectKernelModules", "yes"},
	{"ProtectKernelLogs", "yes"},
	{"ProtectControlGroups", "yes"},
	{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
	{"RestrictNamespaces", "yes"},
	{"LockPersonality", "yes"},
	{"MemoryDenyWriteExecute", "yes"},
	{"SystemCallFilter", "@system-service"},
}

// TestSystemdUnits checks what the sample units say: each has the
// settings of wantService, once, and the four say the same but for the
// daemon's name and description (so they cannot drift apart).
func TestSystemdUnits(t *testing.T) {
	root := e2etest.ModuleRoot(t)
	var first []unitSetting
	for _, d := range e2etest.Daemons {
		path := filepath.Join(root, unitDir, d+"@.service")
		units := readUnit(t, path)
		for _, w := range wantService {
			var got []string
			for _, s := range units {
				if s.section == "[Service]" && s.key == w[0] {
					got = append(got, s.value)
				}
			}
			want := strings.ReplaceAll(w[1], "NAME", d)
			if !reflect.DeepEqual(got, []string{want}) {
				t.Errorf("%s: [Service] %s = %q, want %q once", path, w[0], got, want)
			}
		}
		// Nothing under /etc is writable, nor is the configuration anywhere else.
		for _, s := range units {
			if s.key == "ReadWritePaths" && strings.Contains(s.value, "/etc") {
				t.Errorf("%s: ReadWritePaths=%s opens the configuration for writing", path, s.value)
			}
		}
		// The same settings in every unit, the name and description aside.
		norm := slices.Clone(units)
		name := regexp.MustCompile(`\b` + d + `\b`)
		for i := range norm {
			norm[i].value = name.ReplaceAllString(norm[i].value, "NAME")
			if norm[i].key == "Description" {
				norm[i].value = ""
			}
		}
		if first == nil {
			first = norm
		} else if !reflect.DeepEqual(norm, first) {
			t.Errorf("%s differs from %s@.service beyond the daemon's name and description:\n%v\n%v", path, e2etest.Daemons[0], norm, first)
		}
	}
}

// TestSystemdAnalyzeVerify runs systemd-analyze verify on each unit, its
// ExecStart and ExecStartPre pointing at the binary built for the tests
// (verify wants the commands to exist), and systemd-analyze security,
// which must rate each unit's exposure at most 2.5 of 10. It skips where
// systemd-analyze is not installed.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the units are not verified by systemd")
	}
	if _, err := os.Stat("/bin/kill"); err != nil {
		t.Skipf("no /bin/kill (the units' ExecReload) on this host: %v", err)
	}
	root := e2etest.ModuleRoot(t)
	dir := t.TempDir()
	for _, d := range e2etest.Daemons {
		b, err := os.ReadFile(filepath.Join(root, unitDir, d+"@.service"))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/usr/local/bin/"+d+" ", e2etest.Bin(t, d)+" ")
		unit := filepath.Join(dir, d+"@.service")
		if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sa, "verify", "--man=no", unit).CombinedOutput()
		if err != nil || len(out) != 0 {
			t.Errorf("systemd-analyze verify %s@.service: %v\n%s", d, err, out)
		}
		out, err = exec.Command(sa, "security", "--offline=true", "--threshold=25", unit).CombinedOutput()
		switch {
		case err != nil && strings.Contains(string(out), "--offline"):
			t.Logf("systemd-analyze security --offline is not supported here: %s", firstLine(out))
		case err != nil:
			t.Errorf("systemd-analyze security %s@.service: exposure above 2.5 (%v):\n%s", d, err, out)
		}
	}
}

// TestSystemdSysusers creates the units' user with systemd-sysusers in a
// scratch root, where systemd-sysusers is installed.
func TestSystemdSysusers(t *testing.T) {
	su, err := exec.LookPath("systemd-sysusers")
	if err != nil {
		t.Skip("systemd-sysusers is not installed")
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(e2etest.ModuleRoot(t), unitDir, "sysusers.d", "relaychain.conf")
	if out, err := exec.Command(su, "--root="+root, conf).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, l := range strings.Split(string(passwd), "\n") {
		f := strings.Split(l, ":")
		if len(f) == 7 && f[0] == "relaychain" {
			found = true
			if f[5] != "/var/lib/relaychain" || f[6] != "/usr/sbin/nologin" {
				t.Errorf("passwd line %q: want home /var/lib/relaychain and shell /usr/sbin/nologin", l)
			}
		}
	}
	if !found {
		t.Fatalf("no relaychain user in passwd:\n%s", passwd)
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// TestSystemdAdminSocket checks that each unit tells where the admin socket
// goes: in the instance's state folder, which the unit makes writable, so
// that "NAME status" works under the hardening (the configuration's
// folder, the socket's default place, is read-only there).
func TestSystemdAdminSocket(t *testing.T) {
	root := e2etest.ModuleRoot(t)
	for _, d := range e2etest.Daemons {
		path := filepath.Join(root, unitDir, d+"@.service")
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		inst := regexp.MustCompile(`systemctl enable --now ` + d + `@(\S+)`).FindSubmatch(text)
		sock := regexp.MustCompile(`(?m)^#   admin:\n#     socket: (\S+)$`).FindSubmatch(text)
		if inst == nil || sock == nil {
			t.Errorf("%s: no example instance or no admin socket in the comments", path)
			continue
		}
		want := "/var/lib/relaychain/" + string(inst[1]) + "/" + d + ".sock"
		if string(sock[1]) != want {
			t.Errorf("%s: admin socket %s, want %s", path, sock[1], want)
		}
		writable := false
		for _, s := range readUnit(t, path) {
			if s.section != "[Service]" || (s.key != "ReadWritePaths" && s.key != "StateDirectory") {
				continue
			}
			for _, p := range strings.Fields(s.value) {
				if s.key == "StateDirectory" {
					p = "/var/lib/" + p
				}
				p = strings.ReplaceAll(p, "%i", string(inst[1]))
				if strings.HasPrefix(want, p+"/") {
					writable = true
				}
			}
		}
		if !writable {
			t.Errorf("%s: the admin socket %s is not in a folder the unit makes writable", path, want)
		}
	}
}
