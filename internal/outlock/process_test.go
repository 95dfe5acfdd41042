//go:build unix && !aix

package outlock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// helperEnv makes the test binary, re-executed, take the lock of the
// directory it names, say "locked" and wait to be killed.
const helperEnv = "OUTLOCK_TEST_HOLD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		if _, err := Dir(dir); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("locked")
		select {}
	}
	os.Exit(m.Run())
}

// TestKilledHolderDoesNotBlock: another process holds the lock, so taking
// it fails with that process's pid; once it is SIGKILLed (no chance to
// release or remove anything) the lock is free although its file stays.
func TestKilledHolderDoesNotBlock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		cmd.Wait()
		t.Fatalf("helper said %q", line)
	}
	_, err = Dir(dir)
	var busy *BusyError
	if !errors.As(err, &busy) || busy.PID != cmd.Process.Pid {
		t.Fatalf("lock held by pid %d: got %v", cmd.Process.Pid, err)
	}
	if want := fmt.Sprintf("%s is being written by another ssmax run (pid %d)", dir, cmd.Process.Pid); err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatalf("the killed holder's lock file is gone: %v", err)
	}
	l, err := Dir(dir)
	if err != nil {
		t.Fatalf("lock after the holder was killed: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}
