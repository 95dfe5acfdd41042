package hfcache_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/hfcache"
	"github.com/ssmax/ssmax/internal/hftest"
)

const (
	commitA = "0123456789abcdef0123456789abcdef01234567"
	commitB = "0123cafe89abcdef0123456789abcdef01234567"
	commitC = "fedcba9876543210fedcba9876543210fedcba98"
)

// clearEnv unsets every variable CacheDir reads.
func clearEnv(t *testing.T) {
	for _, v := range []string{"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"} {
		t.Setenv(v, "")
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		spec, repo, rev string
		ok              bool
	}{
		{"org/name", "org/name", "", true},
		{"Qwen/Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B", "", true},
		{"meta-llama/Llama-3.2-1B@main", "meta-llama/Llama-3.2-1B", "main", true},
		{"org/name@0123abc", "org/name", "0123abc", true},
		{"org/name@refs/pr/1", "org/name", "refs/pr/1", true},
		{"gpt2", "", "", false},
		{"./org/name", "", "", false},
		{"/abs/path", "", "", false},
		{"a/b/c", "", "", false},
		{"org/name@", "", "", false},
		{"org/na--me", "", "", false},
		{"org/na..me", "", "", false},
		{"org/-name", "", "", false},
		{"org/name.", "", "", false},
		{"../name", "", "", false},
		{"org/", "", "", false},
	}
	for _, tc := range tests {
		repo, rev, ok := hfcache.ParseID(tc.spec)
		if ok != tc.ok || repo != tc.repo || rev != tc.rev {
			t.Errorf("ParseID(%q) = %q, %q, %v; want %q, %q, %v", tc.spec, repo, rev, ok, tc.repo, tc.rev, tc.ok)
		}
	}
}

func TestCacheDirPrecedence(t *testing.T) {
	clearEnv(t)
	home, _ := os.UserHomeDir()
	if got, want := hfcache.CacheDir(), filepath.Join(home, ".cache", "huggingface", "hub"); got != want {
		t.Errorf("default: %s, want %s", got, want)
	}
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if got := hfcache.CacheDir(); got != "/xdg/huggingface/hub" {
		t.Errorf("XDG_CACHE_HOME: %s", got)
	}
	t.Setenv("HF_HOME", "/hfhome")
	if got := hfcache.CacheDir(); got != "/hfhome/hub" {
		t.Errorf("HF_HOME over XDG_CACHE_HOME: %s", got)
	}
	t.Setenv("HUGGINGFACE_HUB_CACHE", "/legacy")
	if got := hfcache.CacheDir(); got != "/legacy" {
		t.Errorf("HUGGINGFACE_HUB_CACHE over HF_HOME: %s", got)
	}
	t.Setenv("HF_HUB_CACHE", "/hubcache")
	if got := hfcache.CacheDir(); got != "/hubcache" {
		t.Errorf("HF_HUB_CACHE over everything: %s", got)
	}
	t.Setenv("HF_HUB_CACHE", "~/hc")
	if got := hfcache.CacheDir(); got != filepath.Join(home, "hc") {
		t.Errorf("~ expanded: %s", got)
	}
}

// fakeCache builds a cache holding org/model with snapshots A (main, tag
// v1), B (ref dev) and C (refs/pr/1), each with a config.json telling
// which it is.
func fakeCache(t *testing.T) string {
	cache := t.TempDir()
	for _, s := range []struct {
		commit string
		refs   []string
	}{{commitA, []string{"main", "v1"}}, {commitB, []string{"dev"}}, {commitC, []string{"refs/pr/1"}}} {
		src := t.TempDir()
		os.WriteFile(filepath.Join(src, "config.json"), []byte(`{"which": "`+s.commit+`"}`), 0o644)
		hftest.AddSnapshot(t, cache, "org/model", s.commit, src, s.refs...)
	}
	return cache
}

func TestResolve(t *testing.T) {
	clearEnv(t)
	cache := fakeCache(t)
	t.Setenv("HF_HUB_CACHE", cache)
	snap := func(c string) string { return filepath.Join(cache, "models--org--model", "snapshots", c) }
	tests := []struct {
		spec, want, errMsg string
	}{
		{"org/model", snap(commitA), ""},
		{"org/model@main", snap(commitA), ""},
		{"org/model@v1", snap(commitA), ""},
		{"org/model@dev", snap(commitB), ""},
		{"org/model@refs/pr/1", snap(commitC), ""},
		{"org/model@" + commitB, snap(commitB), ""},
		{"org/model@fedc", snap(commitC), ""},
		{"org/model@0123c", snap(commitB), ""},
		{"org/model@0123", "", "prefix of 2 snapshots"},
		{"org/model@nope", "", "revision nope is not in the Hugging Face cache " + filepath.Join(cache, "models--org--model") + " (refs: dev, main, refs/pr/1, v1; snapshots: " + commitA + ", " + commitB + ", " + commitC + ")"},
		{"org/model@../../x", "", "not a ref name"},
		{"org/missing", "", "no directory " + filepath.Join(cache, "models--org--missing")},
		{"org/missing@v2", "", "model org/missing@v2 is not in the Hugging Face cache"},
		{"not-an-id", "not-an-id", ""},
		{"some/dir/deeper", "some/dir/deeper", ""},
	}
	for _, tc := range tests {
		got, err := hfcache.Resolve(tc.spec)
		if tc.errMsg != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errMsg) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Resolve(%q): %v, %v; want a one-line error containing %q", tc.spec, got, err, tc.errMsg)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tc.spec, got, err, tc.want)
			continue
		}
		if got != tc.spec {
			if b, err := os.ReadFile(filepath.Join(got, "config.json")); err != nil || !strings.Contains(string(b), filepath.Base(got)) {
				t.Errorf("Resolve(%q): %s/config.json is %q, %v", tc.spec, got, b, err)
			}
		}
	}
}

func TestResolveBrokenRef(t *testing.T) {
	clearEnv(t)
	cache := fakeCache(t)
	t.Setenv("HF_HUB_CACHE", cache)
	os.WriteFile(filepath.Join(cache, "models--org--model", "refs", "gone"), []byte("aaaa\n"), 0o644)
	_, err := hfcache.Resolve("org/model@gone")
	if err == nil || !strings.Contains(err.Error(), `refs/gone names commit "aaaa", which has no snapshot directory`) {
		t.Errorf("broken ref: %v", err)
	}
}

// TestMissingIDNamesTheCache: an id in no cache names the directory looked
// in, the one HF_HOME gives when HF_HUB_CACHE is unset and HF_HUB_CACHE's
// when both are set.
func TestMissingIDNamesTheCache(t *testing.T) {
	clearEnv(t)
	home := t.TempDir()
	t.Setenv("HF_HOME", home)
	_, err := hfcache.Resolve("org/absent")
	want := filepath.Join(home, "hub", "models--org--absent")
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("HF_HOME: %v, want the error to name %s", err, want)
	}
	hub := t.TempDir()
	t.Setenv("HF_HUB_CACHE", hub)
	_, err = hfcache.Resolve("org/absent")
	want = filepath.Join(hub, "models--org--absent")
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("HF_HUB_CACHE: %v, want the error to name %s", err, want)
	}
}

// TestExistingPathWins: a local directory spelled like an id is the local
// directory, even when the cache holds that id.
func TestExistingPathWins(t *testing.T) {
	clearEnv(t)
	t.Setenv("HF_HUB_CACHE", fakeCache(t))
	t.Chdir(t.TempDir())
	if err := os.MkdirAll(filepath.Join("org", "model"), 0o755); err != nil {
		t.Fatal(err)
	}
	if hfcache.IsID("org/model") {
		t.Error("IsID: an existing directory is not an id")
	}
	if got, err := hfcache.Resolve("org/model"); err != nil || got != "org/model" {
		t.Errorf("Resolve = %q, %v; want the local org/model", got, err)
	}
	if got, err := hfcache.Resolve("org/model@dev"); err != nil || !strings.HasSuffix(got, commitB) {
		t.Errorf("Resolve(org/model@dev) = %q, %v; want the cached snapshot (no such local path)", got, err)
	}
}
