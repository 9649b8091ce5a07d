package flinkconf

import (
	"os"
	"strings"
	"testing"
)

// TestEveryRuleIsInTheREADME: each rule id is named in the README, where
// people look up a finding, and has its line in lint's help (RuleList).
func TestEveryRuleIsInTheREADME(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	list := RuleList()
	for _, id := range Rules() {
		if !strings.Contains(string(readme), id) {
			t.Errorf("rule %s is not named in README.md", id)
		}
		if !strings.Contains(list, "  "+id+"  ") {
			t.Errorf("rule %s has no line in lint's help", id)
		}
	}
}
