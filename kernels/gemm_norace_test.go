//go:build !race

package kernels

// gemmRace reports a -race build (sync.Pool drops objects at random then).
const gemmRace = false
