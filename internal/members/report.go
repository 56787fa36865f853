package members

import (
	"bufio"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/netintent/netintent/internal/health"
)

// Encode writes a member's report as text, a line a target, sorted, so
// that the same verdicts give the same bytes (and no write):
//
//	<namespace>/<intent> <target> <+|-> <last change, Unix ms> <addresses> <passed> [<failure> [<forbidden>]]
//
// "+" is healthy, "-" unhealthy, followed by "?" while the owner has not
// probed the target yet; the failure class and the guard's reason are
// path-escaped. `kubectl get configmap` shows which member judged what.
func Encode(report health.Verdicts) string {
	lines := make([]string, 0, len(report))
	for key, vs := range report {
		for id, v := range vs {
			mark := "+"
			if !v.Healthy {
				mark = "-"
			}
			if !v.Probed {
				mark += "?"
			}
			changed := int64(0)
			if !v.LastChange.IsZero() {
				changed = v.LastChange.UnixMilli()
			}
			line := fmt.Sprintf("%s/%s %s %s %d %d %d", key.Namespace, key.Name, id, mark, changed, v.Addresses, v.Passed)
			if v.Failure != "" || v.Forbidden != "" {
				line += " " + escape(v.Failure)
			}
			if v.Forbidden != "" {
				line += " " + escape(v.Forbidden)
			}
			lines = append(lines, line)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func escape(s string) string {
	if s == "" {
		return "-"
	}
	return url.PathEscape(s)
}

func unescape(s string) (string, error) {
	if s == "-" {
		return "", nil
	}
	return url.PathUnescape(s)
}

// Decode reads what Encode wrote.
func Decode(text string) (health.Verdicts, error) {
	out := health.Verdicts{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 6 || len(f) > 8 {
			return nil, fmt.Errorf("line %d: want 6 to 8 fields, have %d", n, len(f))
		}
		ns, name, ok := strings.Cut(f[0], "/")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("line %d: %q is not <namespace>/<name>", n, f[0])
		}
		mark, unprobed := strings.CutSuffix(f[2], "?")
		if mark != "+" && mark != "-" {
			return nil, fmt.Errorf("line %d: health %q is neither + nor -", n, f[2])
		}
		v := health.Verdict{Healthy: mark == "+", Probed: !unprobed}
		ms, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: last change: %w", n, err)
		}
		if ms != 0 {
			v.LastChange = time.UnixMilli(ms)
		}
		if v.Addresses, err = strconv.Atoi(f[4]); err != nil {
			return nil, fmt.Errorf("line %d: addresses: %w", n, err)
		}
		if v.Passed, err = strconv.Atoi(f[5]); err != nil {
			return nil, fmt.Errorf("line %d: passed: %w", n, err)
		}
		if len(f) > 6 {
			if v.Failure, err = unescape(f[6]); err != nil {
				return nil, fmt.Errorf("line %d: failure: %w", n, err)
			}
		}
		if len(f) > 7 {
			if v.Forbidden, err = unescape(f[7]); err != nil {
				return nil, fmt.Errorf("line %d: forbidden: %w", n, err)
			}
		}
		key := types.NamespacedName{Namespace: ns, Name: name}
		if out[key] == nil {
			out[key] = map[string]health.Verdict{}
		}
		out[key][f[1]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
