package terminal

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// openPTY opens a real pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pty available: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(); _ = s.Close() })
	return m, s
}

func TestNoEchoOnTerminal(t *testing.T) {
	master, slave := openPTY(t)
	if !term.IsTerminal(int(slave.Fd())) {
		t.Fatal("pty slave is not a terminal")
	}
	type result struct {
		pw  string
		err error
	}
	done := make(chan result, 1)
	var prompt bytes.Buffer
	go func() {
		pw, err := ReadPasswordFrom(slave, &prompt, "Password: ")
		done <- result{pw, err}
	}()
	// Wait until echo is off before typing, as a person would see the prompt.
	deadline := time.Now().Add(5 * time.Second)
	for {
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("echo never turned off")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := master.WriteString("hunter2\n"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.pw != "hunter2" {
		t.Fatalf("got %q, %v", r.pw, r.err)
	}
	// Whatever the terminal displayed must not contain the password.
	// (Fd() left the master blocking, so poll before reading.)
	shown := make([]byte, 256)
	n := 0
	fds := []unix.PollFd{{Fd: int32(master.Fd()), Events: unix.POLLIN}}
	if k, err := unix.Poll(fds, 200); err == nil && k > 0 {
		n, _ = master.Read(shown)
	}
	if strings.Contains(string(shown[:n]), "hunter2") {
		t.Fatalf("password echoed: %q", shown[:n])
	}
	tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&unix.ECHO == 0 {
		t.Fatal("echo not restored")
	}
	if prompt.String() != "Password: \n" {
		t.Fatalf("prompt %q", prompt.String())
	}
}

func TestPipedInput(t *testing.T) {
	for in, want := range map[string]string{"s3cret\n": "s3cret", "s3cret": "s3cret", "pw\r\nrest\n": "pw"} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.WriteString(in)
		_ = w.Close()
		got, err := ReadPasswordFrom(r, &bytes.Buffer{}, "Password: ")
		_ = r.Close()
		if err != nil || got != want {
			t.Errorf("input %q: got %q %v", in, got, err)
		}
	}
	r, w, _ := os.Pipe()
	_ = w.Close()
	if _, err := ReadPasswordFrom(r, &bytes.Buffer{}, ""); err == nil {
		t.Error("empty input accepted")
	}
	_ = r.Close()
}
