// Package hfcache resolves Hugging Face model ids ("org/name",
// "org/name@REVISION") to snapshot directories of the local Hugging Face
// hub cache, laid out as huggingface_hub lays it out:
//
//	<cache>/models--org--name/refs/<revision>     a commit hash
//	<cache>/models--org--name/snapshots/<hash>/   files (symlinks into blobs/)
//	<cache>/models--org--name/blobs/<etag>
//
// It reads only; nothing is ever downloaded.
package hfcache

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// DefaultRevision is the revision of an id given without "@REVISION".
const DefaultRevision = "main"

// CacheDir returns the hub cache directory, as huggingface_hub finds it:
// $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE (its older name), else
// $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub. A leading "~/" in a variable is expanded.
func CacheDir() string {
	for _, v := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"} {
		if d := os.Getenv(v); d != "" {
			return expandHome(d)
		}
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		return filepath.Join(expandHome(d), "hub")
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(expandHome(d), "huggingface", "hub")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "~"
	}
	return filepath.Join(home, ".cache", "huggingface", "hub")
}

// expandHome replaces a leading "~" (alone or before a separator) by the
// home directory.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// namePart is one side of "org/name": letters, digits, '.', '_' and '-',
// starting and ending with a letter or digit (huggingface_hub's
// validate_repo_id also forbids "--" and "..", checked in ParseID).
var namePart = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$`)

// ParseID splits spec into a repository id "org/name" and a revision (""
// when spec has no "@"). ok is false when spec is not shaped like a model
// id: exactly one '/' between two valid name parts, optionally followed by
// "@" and a non-empty revision.
func ParseID(spec string) (repo, revision string, ok bool) {
	repo = spec
	if i := strings.IndexByte(spec, '@'); i >= 0 {
		repo, revision = spec[:i], spec[i+1:]
		if revision == "" {
			return "", "", false
		}
	}
	org, name, found := strings.Cut(repo, "/")
	if !found || !namePart.MatchString(org) || !namePart.MatchString(name) ||
		strings.Contains(repo, "--") || strings.Contains(repo, "..") || len(repo) > 96 {
		return "", "", false
	}
	return repo, revision, true
}

// IsID reports whether spec is read as a model id: shaped like one
// (ParseID) and not an existing path.
func IsID(spec string) bool {
	if _, err := os.Stat(spec); err == nil {
		return false
	}
	_, _, ok := ParseID(spec)
	return ok
}

// RepoDir is the cache folder of a model repository "org/name".
func RepoDir(cacheDir, repo string) string {
	return filepath.Join(cacheDir, "models--"+strings.ReplaceAll(repo, "/", "--"))
}

// Resolve returns the directory a --model value (or a PATH argument) names.
// An existing path is returned unchanged, whatever its shape; text shaped
// like a model id ("org/name" or "org/name@REVISION") that is not an
// existing path is looked up in CacheDir() and resolves to its snapshot
// directory; anything else is returned unchanged, for the caller's own
// "no such file" error. An id that is not in the cache is an error naming
// the directory looked in.
func Resolve(spec string) (string, error) {
	if !IsID(spec) {
		return spec, nil
	}
	repo, rev, _ := ParseID(spec)
	return ResolveIn(CacheDir(), repo, rev)
}

// ResolveIn returns the snapshot directory of repository repo at revision
// rev ("" for main) in the hub cache cacheDir. rev is a name under refs/
// (a branch or tag, whose file holds a commit hash), or a commit hash:
// whole, or a prefix that only one snapshot starts with.
func ResolveIn(cacheDir, repo, rev string) (string, error) {
	if rev == "" {
		rev = DefaultRevision
	}
	id := repo
	if rev != DefaultRevision {
		id += "@" + rev
	}
	dir := RepoDir(cacheDir, repo)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("model %s is not in the Hugging Face cache: no directory %s (ssmax does not download; fetch it with `hf download %s`, or set HF_HUB_CACHE or HF_HOME)", id, dir, repo)
	}
	if !validRevision(rev) {
		return "", fmt.Errorf("model %s: revision %q is not a ref name or a commit hash", id, rev)
	}
	snapshots := filepath.Join(dir, "snapshots")
	// A ref that cannot be read (absent, or a folder of refs such as
	// "refs/pr") is not a ref: rev may still be a commit hash.
	if raw, err := os.ReadFile(filepath.Join(dir, "refs", filepath.FromSlash(rev))); err == nil {
		hash := strings.TrimSpace(string(raw))
		snap := filepath.Join(snapshots, hash)
		if !validRevision(hash) || strings.Contains(hash, "/") || !isDir(snap) {
			return "", fmt.Errorf("model %s: refs/%s names commit %q, which has no snapshot directory in %s", id, rev, hash, snapshots)
		}
		return snap, nil
	}
	names := snapshotNames(snapshots)
	if isHex(rev) {
		if slices.Contains(names, rev) {
			return filepath.Join(snapshots, rev), nil
		}
		var matches []string
		for _, n := range names {
			if strings.HasPrefix(n, rev) {
				matches = append(matches, n)
			}
		}
		switch len(matches) {
		case 1:
			return filepath.Join(snapshots, matches[0]), nil
		case 0:
		default:
			return "", fmt.Errorf("model %s: revision %s is the prefix of %d snapshots in %s (%s); give more digits", id, rev, len(matches), snapshots, strings.Join(matches, ", "))
		}
	}
	return "", fmt.Errorf("model %s: revision %s is not in the Hugging Face cache %s (refs: %s; snapshots: %s)", id, rev, dir, listOrNone(refNames(filepath.Join(dir, "refs"))), listOrNone(names))
}

// validRevision refuses revisions that would leave refs/ or snapshots/.
func validRevision(rev string) bool {
	if rev == "" || strings.HasPrefix(rev, "/") || strings.ContainsRune(rev, '\\') || strings.ContainsRune(rev, 0) {
		return false
	}
	for _, part := range strings.Split(rev, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

// isHex reports whether s is a non-empty run of lower-case hex digits (a
// git commit hash or a prefix of one).
func isHex(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// snapshotNames lists the snapshot directories, sorted.
func snapshotNames(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		if isDir(filepath.Join(dir, e.Name())) {
			names = append(names, e.Name())
		}
	}
	return names
}

// refNames lists the ref files under dir (nested ones as "refs/pr/1"),
// sorted.
func refNames(dir string) []string {
	var names []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if rel, err := filepath.Rel(dir, p); err == nil {
				names = append(names, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	slices.Sort(names)
	return names
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
