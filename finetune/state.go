package finetune

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/internal/atomicfile"
	"github.com/ssmax/ssmax/model"
	"github.com/ssmax/ssmax/safetensors"
)

// Names inside a step directory.
const (
	stateDir      = "trainer_state"
	stateFile     = "state.json"
	momentsFile   = "optimizer.safetensors"
	doneMarker    = "DONE"
	stepDirPrefix = "step_"
	finalDir      = "final"
	metricsFile   = "metrics.jsonl"
	runConfigFile = "run_config.json"
)

// trainerState is what a step directory records besides the model.
type trainerState struct {
	Step       int               `json:"step"`
	Tokens     int64             `json:"tokens"`
	Loader     data.LoaderState  `json:"loader"`
	AdamSteps  map[string]int    `json:"adam_steps"`
	Switched   bool              `json:"switched_to_ssmax"`
	Elapsed    float64           `json:"elapsed_seconds"`
	Config     Config            `json:"config"`
	DTypes     map[string]string `json:"dtypes,omitempty"`
	LastLoss   float64           `json:"last_loss"`
	TotalSteps int               `json:"total_steps"`
}

func stepDirName(step int) string { return fmt.Sprintf("%s%06d", stepDirPrefix, step) }

// saveStep writes OUT/step_N atomically: model, trainer state (optimizer
// moments, float32 master weights of trained parameters stored in a narrower dtype,
// data position) and, last, the DONE marker; then renames it into place.
func saveStep(out string, name string, m *model.Model, opt *optimizer, st trainerState) error {
	partial := filepath.Join(out, "."+name+".partial")
	os.RemoveAll(partial)
	// A write error names the file by its final path, OUT/NAME/...
	fail := func(err error) error {
		os.RemoveAll(partial)
		if e, ok := err.(*atomicfile.Error); ok {
			return atomicfile.Relocate(e, partial, filepath.Join(out, name))
		}
		return fmt.Errorf("save %s: %w", name, err)
	}
	if err := m.Save(partial, model.SaveOptions{}); err != nil {
		return fail(err)
	}
	sd := filepath.Join(partial, stateDir)
	if err := os.Mkdir(sd, 0o777); err != nil {
		return fail(err)
	}
	tensors := opt.stateTensors()
	for _, p := range m.Params() {
		// Frozen weights never change: the saved model has their exact
		// values, they need no master copy.
		if p.DType != safetensors.F32 && p.RequiresGrad() {
			tensors = append(tensors, safetensors.FromFloat32("master."+p.Name, safetensors.F32, []int64{int64(len(p.Values()))}, p.Values()))
		}
	}
	if err := safetensors.WriteFile(filepath.Join(sd, momentsFile), safetensors.Metadata{{Key: "format", Value: "ssmax-trainer"}}, tensors); err != nil {
		return fail(err)
	}
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(sd, stateFile), js); err != nil {
		return fail(err)
	}
	if err := atomicfile.SyncDir(sd); err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(partial, doneMarker), []byte(strconv.Itoa(st.Step)+"\n")); err != nil {
		return fail(err)
	}
	if err := atomicfile.CommitDir(partial, filepath.Join(out, name), true); err != nil {
		return fail(err)
	}
	return nil
}

// removeLeftovers removes from out what a run killed while saving left
// behind: hidden .NAME.partial step directories and the temporary
// siblings of package atomicfile. The caller holds out's lock, so no other
// run is writing them.
func removeLeftovers(out string) error {
	entries, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		partial := strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".partial")
		if partial || atomicfile.IsTemporary(name, "") {
			if err := os.RemoveAll(filepath.Join(out, name)); err != nil {
				return fmt.Errorf("remove what an interrupted run left in %s: %w", out, err)
			}
		}
	}
	return nil
}

// completeSteps lists the step numbers of complete step directories, in
// ascending order.
func completeSteps(out string) []int {
	entries, _ := os.ReadDir(out)
	var steps []int
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), stepDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		step, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(out, e.Name(), doneMarker)); err == nil {
			steps = append(steps, step)
		}
	}
	sort.Ints(steps)
	return steps
}

// prune removes all but the newest keep complete step directories.
func prune(out string, keep int) error {
	if keep <= 0 {
		return nil
	}
	steps := completeSteps(out)
	for i := 0; i < len(steps)-keep; i++ {
		if err := os.RemoveAll(filepath.Join(out, stepDirName(steps[i]))); err != nil {
			return err
		}
	}
	return nil
}

// readState reads a step directory's trainer state.
func readState(dir string) (trainerState, error) {
	var st trainerState
	b, err := os.ReadFile(filepath.Join(dir, stateDir, stateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, stateDir, stateFile), err)
	}
	return st, nil
}

// restoreMaster overwrites parameters with the float32 master copies kept
// for tensors stored in a narrower dtype. Frozen weights held in their
// stored dtype keep it: a master copy of one (written by earlier versions
// for every such tensor) holds the same values, since it never trained.
func restoreMaster(f *safetensors.File, m *model.Model) error {
	for _, p := range m.Params() {
		if _, ok := f.Tensor("master." + p.Name); !ok || p.Stored() {
			continue
		}
		v, err := f.Float32s("master." + p.Name)
		if err != nil {
			return err
		}
		if len(v) != len(p.Values()) {
			return fmt.Errorf("%s: master copy of %s has %d values, want %d", f.Path(), p.Name, len(v), len(p.Values()))
		}
		copy(p.Values(), v)
	}
	return nil
}

// truncateMetrics drops metric lines past step (from a run killed after
// its last checkpoint), so a resumed run appends a clean sequence.
func truncateMetrics(path string, step int) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec struct {
			Step int `json:"step"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Step > step {
			continue
		}
		keep = append(keep, line)
	}
	out := strings.Join(keep, "\n")
	if out != "" {
		out += "\n"
	}
	return atomicfile.WriteFile(path, []byte(out))
}
