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
