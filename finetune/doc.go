// Package finetune trains language models with spago: fine-tuning a
// (converted) checkpoint, or pretraining from scratch with an optional
// switch from softmax to SSMax attention at a chosen step (the paper's
// "during pretraining" configuration).
//
// Run (run.go) sets a run up (setup.go: model, data, optimizer, resumed
// state) and hands it to the training loop, which reads top to bottom in
// trainer.loop: data -> forward -> loss -> backward -> clip -> step -> log
// -> checkpoint. The switch to SSMax is in switch.go. Checkpoints
// (state.go) are complete model directories plus the trainer state, so a
// run resumes exactly where it stopped. A run holds the lock of its output
// directory (OUT/.ssmax.lock, package outlock) from start to end, so a
// second run on it fails at once; a non-finite loss, gradient norm or
// weight stops a run before any checkpoint could hold it.
//
// RunTorch (torch.go) hands the same run to PyTorch's distributed launcher
// instead: it checks and prepares everything here (torchprep.go: the
// resolved spec, the token streams, the batch plan in the spago loader's
// order, the checkpoint layout), then starts python/ssmax_torch's workers
// and turns their progress into the same hooks (torchlaunch.go).
package finetune
