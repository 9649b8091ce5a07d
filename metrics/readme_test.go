package metrics

import (
	"os"
	"regexp"
	"testing"
)

// TestEveryMetricIsInTheREADME: each metric this package defines is named
// in the README's metrics section, where operators look its name up.
func TestEveryMetricIsInTheREADME(t *testing.T) {
	src, err := os.ReadFile("metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`"(flinkpki_[a-z_]+)"`).FindAllSubmatch(src, -1)
	if len(names) < 10 {
		t.Fatalf("found %d metric names in metrics.go; the pattern no longer matches how they are written", len(names))
	}
	for _, m := range names {
		if !regexp.MustCompile("`" + string(m[1]) + "[`{]").Match(readme) {
			t.Errorf("metric %s is not named in README.md", m[1])
		}
	}
}
