// Package openblas exposes OpenBLAS's cblas_sgemm to package kernels when
// built with the tag openblas (and cgo; Debian: apt-get install
// libopenblas-dev). It lives apart from kernels because a Go package that
// uses cgo cannot also hold Go assembly. Without the tag it is empty.
package openblas
