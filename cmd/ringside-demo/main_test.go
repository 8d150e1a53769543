package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestDemo runs the README's first command in-process and holds it to what it prints: every
// user sticks, only the stopped backend's users move, no request fails, and they all return.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes ~15s")
	}
	var out bytes.Buffer
	if err := run(&out, false, false); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	text := out.String()
	t.Log("\n" + text)
	if strings.Contains(text, " AND ") {
		t.Error("a user reached two backends with nothing changed")
	}
	failed := regexp.MustCompile(`(\d+) of \d+ requests failed`).FindAllStringSubmatch(text, -1)
	if len(failed) != 3 {
		t.Fatalf("want 3 request summaries, got %d", len(failed))
	}
	for _, f := range failed {
		if f[1] != "0" {
			t.Errorf("requests failed: %s", f[0])
		}
	}
	victim := regexp.MustCompile(`2\. (backend-\d) stops`).FindStringSubmatch(text)
	if victim == nil {
		t.Fatal("no backend was stopped")
	}
	step2 := text[strings.Index(text, "2. "):strings.Index(text, "3. ")]
	for _, line := range strings.Split(step2, "\n") {
		if strings.Contains(line, "moved from") && !strings.Contains(line, "moved from "+victim[1]) {
			t.Errorf("a user of a surviving backend moved: %s", line)
		}
	}
	if !strings.Contains(text, fmt.Sprintf("%d of %d users are where they started", len(users), len(users))) {
		t.Error("not every user returned after the backend came back")
	}
}
