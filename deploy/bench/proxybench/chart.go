package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
)

// chartBar is one contender in the chart.
type chartBar struct {
	Label  string
	Kind   string
	Engine string  // ringside's engine when not the default: event_loop bars are darker
	CPU    float64 // proxy CPU µs per request; NaN or 0 for "no proxy"
	RPS    float64
}

// chartData is what the chart shows: two panels of horizontal bars, CPU per request and
// requests per second, under a title and the machine line.
type chartData struct {
	Title    string
	Subtitle []string // smaller lines under the title: date, machine, settings
	Bars     []chartBar
}

var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colText       = color.RGBA{30, 30, 30, 255}
	colMuted      = color.RGBA{110, 110, 110, 255}
	colAxis       = color.RGBA{180, 180, 180, 255}
	kindColors    = map[string]color.RGBA{
		kindRingside: {230, 120, 30, 255},
		kindNginx:    {40, 150, 70, 255},
		kindHAProxy:  {40, 100, 190, 255},
		kindCaddy:    {140, 80, 180, 255},
		kindDirect:   {130, 130, 130, 255},
	}
	colRingsideLoop = color.RGBA{170, 70, 10, 255} // ringside event_loop: ringside's colour, darker
)

// barColor is the colour of b's bars: its kind's, darker for ringside's event loops.
func barColor(b chartBar) color.RGBA {
	if b.Kind == kindRingside && b.Engine == engineEventLoop {
		return colRingsideLoop
	}
	if c, ok := kindColors[b.Kind]; ok {
		return c
	}
	return kindColors[kindDirect]
}

const (
	chartW     = 1200
	chartScale = 2 // font scale: 10×14-pixel glyphs
	barH       = 26
	barGap     = 10
	labelW     = 290 // room for the proxy names left of the bars
	valueW     = 170 // room for the value right of the longest bar
	margin     = 24
)

// renderChart draws d.
func renderChart(d chartData) *image.RGBA {
	lineH := glyphH*chartScale + 10
	panelH := lineH + len(d.Bars)*(barH+barGap) + 20
	h := margin + lineH + len(d.Subtitle)*lineH + 10 + 2*panelH + margin
	img := image.NewRGBA(image.Rect(0, 0, chartW, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(colBackground), image.Point{}, draw.Src)

	y := margin
	drawText(img, margin, y, d.Title, chartScale, colText)
	y += lineH
	for _, line := range d.Subtitle {
		drawText(img, margin, y, line, chartScale, colMuted)
		y += lineH
	}
	y += 10

	drawPanel(img, y, "PROXY CPU TIME PER REQUEST, MICROSECONDS (LOWER IS BETTER)", d.Bars,
		func(b chartBar) float64 { return b.CPU }, func(v float64) string { return fmt.Sprintf("%.1f", v) })
	y += panelH
	drawPanel(img, y, "REQUESTS PER SECOND (HIGHER IS BETTER)", d.Bars,
		func(b chartBar) float64 { return b.RPS }, func(v float64) string { return fint(v) + " /S" })
	return img
}

// drawPanel draws one titled group of horizontal bars starting at y.
func drawPanel(img *image.RGBA, y int, title string, bars []chartBar, value func(chartBar) float64, format func(float64) string) {
	drawText(img, margin, y, title, chartScale, colText)
	y += glyphH*chartScale + 10
	maxV := 0.0
	for _, b := range bars {
		if v := value(b); v > maxV && !math.IsInf(v, 0) {
			maxV = v
		}
	}
	x0 := margin + labelW
	span := chartW - x0 - valueW - margin
	// axis line
	draw.Draw(img, image.Rect(x0-1, y-4, x0, y+len(bars)*(barH+barGap)), image.NewUniform(colAxis), image.Point{}, draw.Src)
	for _, b := range bars {
		ty := y + (barH-glyphH*chartScale)/2
		drawText(img, margin, ty, b.Label, chartScale, colText)
		v := value(b)
		if math.IsNaN(v) || v <= 0 || maxV <= 0 {
			drawText(img, x0+8, ty, "NO PROXY", chartScale, colMuted)
			y += barH + barGap
			continue
		}
		w := int(math.Round(float64(span) * v / maxV))
		draw.Draw(img, image.Rect(x0, y, x0+max(w, 1), y+barH), image.NewUniform(barColor(b)), image.Point{}, draw.Src)
		drawText(img, x0+w+8, ty, format(v), chartScale, colText)
		y += barH + barGap
	}
}

// encodePNG encodes img as PNG.
func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeChart renders d and writes it to path.
func writeChart(path string, d chartData) error {
	b, err := encodePNG(renderChart(d))
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
