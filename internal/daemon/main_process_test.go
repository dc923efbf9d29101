package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mainProcess returns the test binary set up to run Main with args.
func mainProcess(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a process")
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), mainArgsEnv+"="+strings.Join(args, "\n"))
	return cmd
}

func TestMainProcessFails(t *testing.T) {
	path := writeFile(t, "bad.yaml", "label: -x\nparents: []\n")
	cmd := mainProcess(t, "-c", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v", err)
	}
	want := path + `:1: label: label "-x" must start with a letter or digit` + "\n" +
		path + ":2: parents: at least one parent is required\n" +
		"relay: 2 problems in " + path + "\n"
	if stderr.String() != want || stdout.Len() != 0 {
		t.Fatalf("stderr:\n%s\nwant:\n%s\nstdout: %q", stderr.String(), want, stdout.String())
	}
}

func TestMainProcessVersion(t *testing.T) {
	out, err := mainProcess(t, "-v").Output()
	if err != nil || !strings.HasPrefix(string(out), "relay dev (commit ") || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("got %q, %v", out, err)
	}
}

func TestMainProcessStopsOnSIGTERM(t *testing.T) {
	path, logFile := sampleWithLog(t, 3)
	cmd := mainProcess(t, "--config", path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
	}()
	select {
	case l := <-ready:
		if l != "ready\n" {
			t.Fatalf("got %q; stderr %q", l, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("daemon not ready")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v, stderr %q", err, stderr.String())
	}
	if got := readLog(t, logFile); !strings.Contains(got, " 3 main: starting [") || !strings.HasSuffix(got, " 3 main: stopped\n") {
		t.Fatalf("log:\n%s", got)
	}
}
