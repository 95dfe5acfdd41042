// Package hftest builds fake Hugging Face hub caches for tests, laid out as
// huggingface_hub writes them: blobs named by their SHA-256, snapshot files
// that are relative symlinks into blobs/, and refs holding commit hashes.
package hftest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// AddSnapshot puts the regular files of srcDir into the cache cacheDir as
// the snapshot commit of repository repo ("org/name"), and writes each ref
// in refs (e.g. "main") with commit. It returns the snapshot directory.
func AddSnapshot(t testing.TB, cacheDir, repo, commit, srcDir string, refs ...string) string {
	t.Helper()
	folder := filepath.Join(cacheDir, "models--"+filepath.Dir(repo)+"--"+filepath.Base(repo))
	blobs := filepath.Join(folder, "blobs")
	snap := filepath.Join(folder, "snapshots", commit)
	for _, d := range []string{blobs, snap, filepath.Join(folder, "refs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(srcDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(srcDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		blob := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(blobs, blob), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "blobs", blob), filepath.Join(snap, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for _, ref := range refs {
		p := filepath.Join(folder, "refs", filepath.FromSlash(ref))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(commit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return snap
}
