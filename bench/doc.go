// Package bench holds the Go benchmarks of whole model steps: a training
// step's forward and backward pass and the inference forward pass of
// evaluation, at the shapes of bench/models (the S1-S3 presets that
// bench/train.sh and bench/eval.sh compare with PyTorch). They live here,
// above package kernels, because they need the model, finetune and eval
// packages. Run them with
//
//	go test ./bench/ -run '^$' -bench 'TrainStep|EvalForward'
//
// and profile one with, for instance,
//
//	go test ./bench/ -run '^$' -bench TrainStep/s1 -benchtime 5x -cpuprofile cpu.out
//
// BenchmarkTrainStep runs each timed step in an execution-trace region
// named "step", so a -trace (with -cpuprofile for stack samples) can be
// read for the steps alone, without model building and warm-up.
//
// The package has no other code.
package bench
