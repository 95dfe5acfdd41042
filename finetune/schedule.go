package finetune

import "math"

// LearningRate is the schedule: linear warmup from 0 over warmup steps,
// then cosine or linear decay from lr to minLR at total, or constant.
// step counts from 0.
func LearningRate(schedule string, step, warmup, total int, lr, minLR float64) float64 {
	if warmup > 0 && step < warmup {
		return lr * float64(step+1) / float64(warmup)
	}
	if schedule == "constant" || total <= warmup {
		return lr
	}
	progress := float64(step-warmup) / float64(max(1, total-warmup))
	progress = math.Min(1, math.Max(0, progress))
	switch schedule {
	case "linear":
		return lr - (lr-minLR)*progress
	default:
		return minLR + 0.5*(lr-minLR)*(1+math.Cos(math.Pi*progress))
	}
}
