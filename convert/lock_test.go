//go:build unix && !aix

package convert_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/convert"
	"github.com/ssmax/ssmax/internal/outlock"
)

// childEnv makes the test binary, re-executed, convert SRC to DST (the
// value "SRC|DST") and stop after the first tensor, saying "paused", until
// it is killed.
const childEnv = "CONVERT_TEST_PAUSED_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		src, dst, _ := strings.Cut(v, "|")
		o := convert.Options{Src: src, Dst: dst, Variant: "ssmax", Init: convert.InitMatch}
		o.Progress = func(done, total int64) {
			fmt.Println("paused")
			select {}
		}
		_, err := convert.Run(context.Background(), o)
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// TestConcurrentConvert: a conversion (another process) is writing DST; a
// second conversion to DST fails at once with the first's pid and leaves
// the first's work alone. Once the first is SIGKILLed, a new conversion
// proceeds, removes the killed one's temporary directory and writes a
// complete DST with no lock file inside or beside it.
func TestConcurrentConvert(t *testing.T) {
	src := filepath.Join(fixtures, "llama-tiny")
	parent := t.TempDir()
	dst := filepath.Join(parent, "dst")
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+src+"|"+dst)
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "paused\n" {
		child.Wait()
		t.Fatalf("the first conversion said %q", line)
	}
	before := names(t, parent)
	if len(before) != 2 || before[0] != ".dst.ssmax.lock" || !strings.HasPrefix(before[1], ".dst.tmp-") {
		t.Fatalf("while converting, the parent holds %v", before)
	}

	_, err = convert.Run(context.Background(), convert.Options{Src: src, Dst: dst, Variant: "ssmax", Init: convert.InitMatch})
	want := fmt.Sprintf("%s is being written by another ssmax run (pid %d)", dst, child.Process.Pid)
	if !errors.Is(err, outlock.ErrBusy) || err.Error() != want {
		t.Fatalf("second conversion: %v, want %s", err, want)
	}
	if after := names(t, parent); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the refused conversion changed the parent: %v, was %v", after, before)
	}

	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	if _, err := convert.Run(context.Background(), convert.Options{Src: src, Dst: dst, Variant: "ssmax", Init: convert.InitMatch}); err != nil {
		t.Fatalf("conversion after the first was killed: %v", err)
	}
	if got := names(t, parent); fmt.Sprint(got) != "[dst]" {
		t.Errorf("the parent holds %v, want only dst", got)
	}
	for _, name := range names(t, dst) {
		if strings.Contains(name, "lock") || strings.HasPrefix(name, ".") {
			t.Errorf("DST holds %s", name)
		}
	}
	c, err := checkpoint.Open(dst, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
