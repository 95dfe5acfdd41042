package cmd

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestTorchEngineSameErrors: bad input gets the same one-line error from
// both engines, and --engine torch reports it before starting any Python
// (its --python does not even exist here).
func TestTorchEngineSameErrors(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("hello world, a small corpus.\n", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	badTokens := filepath.Join(dir, "bad.bin")
	if err := os.WriteFile(badTokens, []byte{1, 0, 2, 0, 0xff, 0x7f, 3, 0}, 0o644); err != nil {
		t.Fatal(err)
	}
	gpt2 := filepath.Join(fixtures, "gpt2-tiny")
	preset := filepath.Join("..", "configs", "models", "gpt2-rope-tiny.yaml")
	ft := func(extra ...string) []string {
		return append([]string{"finetune", "--model", gpt2, "--tokenizer", "bytes", "--steps", "2", "--batch-size", "2", "--seq-len", "32"}, extra...)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no data", ft("--out", filepath.Join(dir, "o1")), "no training data (--data)"},
		{"schedule", ft("--data", text, "--out", filepath.Join(dir, "o2"), "--schedule", "steep"), `--schedule "steep": want cosine, linear or constant`},
		{"train set", ft("--data", text, "--out", filepath.Join(dir, "o3"), "--train", "heads"), `--train "heads": want all, attention or ssmax`},
		{"pattern", ft("--data", text, "--out", filepath.Join(dir, "o4"), "--freeze", "("), "pattern \"(\""},
		{"missing model", []string{"finetune", "--model", filepath.Join(dir, "none"), "--data", text, "--out", filepath.Join(dir, "o5")}, "no such file or directory"},
		{"learned positions", ft("--data", text, "--out", filepath.Join(dir, "o6"), "--seq-len", "1000"), "--seq-len 1000 exceeds the model's 128 learned positions"},
		{"token ids", ft("--data", badTokens, "--out", filepath.Join(dir, "o7")), "outside the model's vocab size 256"},
		{"nothing trainable", ft("--data", text, "--out", filepath.Join(dir, "o8"), "--train", "ssmax"), "no trainable parameters: --train ssmax"},
		{"switch init", []string{"pretrain", "--arch", preset, "--data", text, "--out", filepath.Join(dir, "o9"), "--steps", "3", "--batch-size", "2",
			"--seq-len", "32", "--switch-to-ssmax-at", "2", "--init", "const"}, "switch to SSMax at step 2: --init const needs --s VALUE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, spagoErr, code := run(t, append([]string{"--quiet"}, tc.args...)...)
			if code != 1 || !strings.Contains(spagoErr, tc.want) || strings.Count(spagoErr, "\n") != 1 {
				t.Fatalf("spago: exit %d, %q; want one line with %q", code, spagoErr, tc.want)
			}
			args := append([]string{"--quiet"}, tc.args...)
			for i, a := range args {
				if strings.HasPrefix(a, filepath.Join(dir, "o")) {
					args[i] = a + "-torch"
				}
			}
			_, torchErr, code := run(t, append(args, "--engine", "torch", "--python", filepath.Join(dir, "no-python"))...)
			if code != 1 || strings.ReplaceAll(torchErr, "-torch", "") != spagoErr {
				t.Fatalf("torch engine: exit %d, %q; spago said %q", code, torchErr, spagoErr)
			}
		})
	}
}

// TestTorchEngineOptions: the torch engine's own options are checked before
// any work, torch options need --engine torch, and a Python without torch
// is refused in one line that says how to install it.
func TestTorchEngineOptions(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "corpus.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("hello world, a small corpus.\n", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--quiet", "finetune", "--model", filepath.Join(fixtures, "gpt2-tiny"), "--tokenizer", "bytes", "--data", text,
		"--out", filepath.Join(dir, "out"), "--steps", "2", "--batch-size", "2", "--seq-len", "32"}
	noTorch := filepath.Join(dir, "python-without-torch")
	python3, err := exec.LookPath("python3")
	if err != nil && runtime.GOOS == "linux" {
		python3 = "/usr/bin/python3"
	}
	// -S: no site-packages, so no torch, whatever this machine has.
	if err := os.WriteFile(noTorch, []byte("#!/bin/sh\nexec "+python3+" -S \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	hasPython := exec.Command(noTorch, "-c", "pass").Run() == nil
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"engine", []string{"--engine", "jax"}, `--engine "jax": want spago or torch`},
		{"torch flag on spago", []string{"--nproc-per-node", "2"}, "--nproc-per-node needs --engine torch"},
		{"processes", []string{"--engine", "torch", "--nproc-per-node", "0"}, "--nproc-per-node must be positive, got 0"},
		{"precision", []string{"--engine", "torch", "--precision", "fp16"}, `--precision "fp16": want fp32 or bf16`},
		{"node rank", []string{"--engine", "torch", "--nnodes", "2", "--node-rank", "2", "--master-addr", "10.0.0.1"}, "--node-rank 2: want 0 to 1 (--nnodes 2)"},
		{"master", []string{"--engine", "torch", "--nnodes", "2"}, "--nnodes 2 needs --master-addr"},
		{"fsdp switch", []string{"--engine", "torch", "--fsdp", "--switch-to-ssmax-at", "1"}, "--fsdp cannot add parameters mid-run"},
		{"mix retrieval", []string{"--engine", "torch", "--mix-retrieval", "0.5"}, "--mix-retrieval is not supported by --engine torch"},
		{"no python", []string{"--engine", "torch", "--python", filepath.Join(dir, "none")}, "not found: install PyTorch for it (Debian/Ubuntu: apt-get install python3-torch"},
	}
	if hasPython {
		cases = append(cases, struct {
			name string
			args []string
			want string
		}{"python without torch", []string{"--engine", "torch", "--python", noTorch}, "cannot import torch: install PyTorch for it (Debian/Ubuntu: apt-get install python3-torch"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := run(t, append(append([]string{}, base...), tc.args...)...)
			if code != 1 || !strings.Contains(errs, tc.want) || strings.Count(errs, "\n") != 1 {
				t.Fatalf("exit %d, %q; want one line with %q", code, errs, tc.want)
			}
		})
	}
}
