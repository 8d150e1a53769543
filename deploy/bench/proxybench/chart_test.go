package main

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestGlyphsAreWellFormed(t *testing.T) {
	for r, g := range glyphs {
		for i, row := range g {
			if len(row) != glyphW {
				t.Errorf("glyph %q row %d is %d wide, want %d", r, i, len(row), glyphW)
			}
			for _, c := range row {
				if c != '#' && c != '.' {
					t.Errorf("glyph %q row %d has %q", r, i, c)
				}
			}
		}
	}
	if glyphFor('a') != glyphs['A'] || glyphFor('☃') != glyphs['?'] {
		t.Error("glyphFor: lower case should map to upper case, unknown runes to '?'")
	}
	if got := textWidth("AB", 2); got != (2*6-1)*2 {
		t.Errorf("textWidth = %d", got)
	}
}

func TestChartPNG(t *testing.T) {
	d := chartData{
		Title:    "PROXYBENCH TEST",
		Subtitle: []string{"2026-01-02 · NPROC 2 · TEST CPU"},
		Bars: []chartBar{
			{Label: "ringside", Kind: kindRingside, CPU: 30, RPS: 30000},
			{Label: "nginx", Kind: kindNginx, CPU: 20, RPS: 33000},
			{Label: "direct", Kind: kindDirect, CPU: math.NaN(), RPS: 60000},
		},
	}
	b, err := encodePNG(renderChart(d))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatal("not a PNG signature")
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != chartW || img.Bounds().Dy() < 200 {
		t.Errorf("size %v", img.Bounds())
	}
	// The longest CPU bar (ringside's) spans the full plotting width, so its colour must be
	// found at the far right of the bar area.
	want := kindColors[kindRingside]
	found := false
	x := chartW - valueW - margin - 2
	for y := 0; y < img.Bounds().Dy() && !found; y++ {
		r, g, bl, _ := img.At(x, y).RGBA()
		found = uint8(r>>8) == want.R && uint8(g>>8) == want.G && uint8(bl>>8) == want.B
	}
	if !found {
		t.Errorf("no ringside-coloured bar pixel in column %d", x)
	}

	path := filepath.Join(t.TempDir(), "chart.png")
	if err := writeChart(path, d); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.DecodeConfig(f); err != nil {
		t.Errorf("written chart does not decode: %v", err)
	}
}

func TestChartNoValues(t *testing.T) {
	// All bars missing: no division by zero, still a picture.
	img := renderChart(chartData{Title: "X", Bars: []chartBar{{Label: "a", CPU: math.NaN()}, {Label: "b"}}})
	if img.Bounds().Empty() {
		t.Fatal("empty image")
	}
}
