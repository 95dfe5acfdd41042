package kernels

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestTestImports: the package's tests stay below the model. They import
// nothing of the module but the kernels themselves and what kernels
// imports (attnscale) or tests need (internal/cputime); benchmarks of
// whole models live in bench/.
func TestTestImports(t *testing.T) {
	const module = "github.com/ssmax/ssmax/"
	allowed := map[string]bool{
		module + "kernels":          true,
		module + "attnscale":        true,
		module + "internal/cputime": true,
	}
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("test files: %v %v", files, err)
	}
	for _, name := range files {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, module) && !allowed[path] && !strings.HasPrefix(path, module+"kernels/internal/") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
