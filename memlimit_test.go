package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestMemoryLimitFollowsTheContainer(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v2 := write("memory.max", "268435456\n")
	unlimited := write("unlimited", "max\n")
	v1none := write("v1", "9223372036854771712\n")
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		files []string
		want  int64
	}{
		{[]string{v2}, 268435456},
		{[]string{missing, v2}, 268435456},
		{[]string{unlimited, v2}, 0},
		{[]string{v1none}, 0},
		{[]string{missing}, 0},
	} {
		if got := containerMemoryLimit(c.files); got != c.want {
			t.Errorf("containerMemoryLimit(%v) = %d, want %d", c.files, got, c.want)
		}
	}

	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	if got := setMemoryLimit([]string{v2}); got != 241591910 {
		t.Errorf("set %d from a 256 MiB limit, want 90%%: 241591910", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 241591910 {
		t.Errorf("the runtime's limit is %d", got)
	}
	t.Setenv("GOMEMLIMIT", "100MiB")
	if got := setMemoryLimit([]string{v2}); got != 0 {
		t.Errorf("set %d though GOMEMLIMIT is given", got)
	}
}

// TestSetGCPercent checks that --gc-percent sets Go's collection target,
// and that a GOGC in the environment keeps the one it set.
func TestSetGCPercent(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
	if !setGCPercent(25) {
		t.Error("setGCPercent(25) set nothing without GOGC")
	}
	if got := debug.SetGCPercent(100); got != 25 {
		t.Errorf("the runtime's target is %d, want 25", got)
	}
	t.Setenv("GOGC", "200")
	if setGCPercent(25) {
		t.Error("setGCPercent(25) set the target though GOGC is given")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("the runtime's target is %d, want the 100 it had", got)
	}
}
