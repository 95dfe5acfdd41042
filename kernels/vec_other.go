//go:build !amd64

package kernels

// useVec reports whether assembly versions of the element-wise loops are
// used: there are none on this architecture (see vec_amd64.go).
const useVec = false

// The assembly dispatchers of vec_amd64.go: none here, every value is left
// to the Go loops (they return 0 values done).

func expScaledSubVec(y, x []float32, f, m float32, acc *[4]float64) int       { return 0 }
func softmaxGradRowVec(s, dp []float32, f, L, D float32, acc *[4]float32) int { return 0 }
func sigmoidWeightedRowsVec(y, s, x []float32, k, c float64) int              { return 0 }
func rotateHalfVec(y1, y2, x1, x2, c, s []float32, inverse bool) int          { return 0 }
func adamWVec(a *AdamW, w, g, v, m []float32) (int, bool)                     { return 0, true }
