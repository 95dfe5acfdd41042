package finetune

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/model"
)

// TestTorchCheckpointsAsModelSave: for every fixture (one file or shards
// with an index, F32 or BF16, Conv1D [in, out] weights, GPT-NeoX's per-head
// query_key_value, tied heads, SSMax s and b), the torch engine's
// checkpoint writer, given the save plan and the weights it read, writes
// the directory model.Save writes, byte for byte.
func TestTorchCheckpointsAsModelSave(t *testing.T) {
	if testing.Short() {
		t.Skip("writes every fixture with Python")
	}
	py := ""
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import torch").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("no Python with torch (apt-get install python3-torch)")
	}
	const fixtures = "../testdata/fixtures"
	entries, err := os.ReadDir(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	type job struct {
		Src, Spec, Plan, Node, Dst string
	}
	var jobs []job
	for _, e := range entries {
		src := filepath.Join(fixtures, e.Name())
		if _, err := os.Stat(filepath.Join(src, "config.json")); err != nil {
			continue
		}
		node := filepath.Join(base, e.Name())
		ck, spec, err := openSpec(src)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := planTorchSave(ck, spec, ck.Config.Clone(), nil, filepath.Join(node, "save"))
		ck.Close()
		if err != nil {
			t.Fatal(err)
		}
		j := job{Src: src, Spec: filepath.Join(node, "spec.json"), Plan: filepath.Join(node, "plan.json"), Node: node, Dst: filepath.Join(base, "py-"+e.Name())}
		if err := writeJSON(j.Spec, spec.Resolve(arch.ResolveOptions{})); err != nil {
			t.Fatal(err)
		}
		if err := writeJSON(j.Plan, plan); err != nil {
			t.Fatal(err)
		}
		m, err := model.Open(src, "", model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Save(filepath.Join(base, "go-"+e.Name()), model.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	if len(jobs) < 29 {
		t.Fatalf("%d fixtures", len(jobs))
	}
	list := filepath.Join(base, "jobs.json")
	if err := writeJSON(list, jobs); err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys
from ssmax_torch import checkpoint
for j in json.load(open(sys.argv[1])):
    spec, plan = json.load(open(j["Spec"])), json.load(open(j["Plan"]))
    w, _ = checkpoint.load_weights(j["Src"], spec["tensors"], spec)
    checkpoint.write_checkpoint(j["Dst"], plan, j["Node"], w, {t["name"]: t for t in spec["tensors"]}, spec)
`
	cmd := exec.Command(py, "-c", script, list)
	abs, _ := filepath.Abs("../python")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+abs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	for _, j := range jobs {
		name := filepath.Base(j.Src)
		goDir, pyDir := filepath.Join(base, "go-"+name), j.Dst
		goFiles, _ := os.ReadDir(goDir)
		pyFiles, _ := os.ReadDir(pyDir)
		if len(goFiles) != len(pyFiles) {
			t.Errorf("%s: model.Save wrote %d files, the torch engine %d", name, len(goFiles), len(pyFiles))
			continue
		}
		for _, f := range goFiles {
			a, _ := os.ReadFile(filepath.Join(goDir, f.Name()))
			b, err := os.ReadFile(filepath.Join(pyDir, f.Name()))
			if err != nil || !bytes.Equal(a, b) {
				t.Errorf("%s: %s differs (%v)", name, f.Name(), err)
			}
		}
	}
}
