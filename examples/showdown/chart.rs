//! The PNG chart of throughput by producer/consumer pairs: plotters draws
//! the plot, ab_glyph the text (plotters' text needs a font feature that
//! would change criterion's plots too).

use std::path::Path;

use ab_glyph::{Font, FontVec, PxScale, ScaleFont, point};
use plotters::prelude::*;

/// Where a TrueType font is commonly found.
const FONTS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

const WIDTH: u32 = 900;
const HEIGHT: u32 = 540;

fn load_font() -> Result<FontVec, String> {
    let path = FONTS
        .iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| format!("no TrueType font found (looked for {})", FONTS.join(", ")))?;
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    FontVec::try_from_vec(bytes).map_err(|_| format!("{path}: not a usable font"))
}

/// Where a line of text goes relative to its `x`.
#[derive(Clone, Copy)]
enum Align {
    Left,
    Center,
    Right,
}

/// An RGB image with text drawn on it.
struct Canvas<'a> {
    pixels: &'a mut [u8],
    font: &'a FontVec,
}

impl Canvas<'_> {
    /// Draws `text` in black at `size` pixels, its baseline at `y`.
    fn text(&mut self, text: &str, size: f32, x: f32, y: f32, align: Align) {
        let font = self.font.as_scaled(PxScale::from(size));
        let width: f32 = text.chars().map(|c| font.h_advance(font.glyph_id(c))).sum();
        let mut caret = match align {
            Align::Left => x,
            Align::Center => x - width / 2.0,
            Align::Right => x - width,
        };
        for c in text.chars() {
            let glyph = font
                .glyph_id(c)
                .with_scale_and_position(size, point(caret, y));
            caret += font.h_advance(glyph.id);
            let Some(outline) = self.font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            outline.draw(|gx, gy, coverage| {
                let (px, py) = (
                    bounds.min.x as i64 + i64::from(gx),
                    bounds.min.y as i64 + i64::from(gy),
                );
                if px < 0 || py < 0 || px >= i64::from(WIDTH) || py >= i64::from(HEIGHT) {
                    return;
                }
                let at = (py as usize * WIDTH as usize + px as usize) * 3;
                for channel in &mut self.pixels[at..at + 3] {
                    *channel = (f32::from(*channel) * (1.0 - coverage.min(1.0))) as u8;
                }
            });
        }
    }
}

/// A round step for about five ticks up to `top`.
fn tick_step(top: f64) -> f64 {
    let raw = top / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * power)
}

/// Draws million messages per second by pairs, one line per
/// implementation: `rows` are (pairs, mproc s/msg, crossbeam s/msg).
pub fn throughput(path: &Path, rows: &[(usize, f64, f64)], cores: usize) -> Result<(), String> {
    let font = load_font()?;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let rate = |s: f64| 1e-6 / s;
    let top = rows
        .iter()
        .map(|&(_, m, x)| rate(m).max(rate(x)))
        .fold(0.0, f64::max)
        .max(1e-3)
        * 1.15;
    let step = tick_step(top);
    let max_pairs = rows.iter().map(|r| r.0).max().unwrap_or(1).max(2);
    let series = [
        ("mproc PodQueue (processes)", RGBColor(200, 60, 30), true),
        (
            "crossbeam ArrayQueue (threads)",
            RGBColor(40, 90, 180),
            false,
        ),
    ];

    let mut pixels = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    // Pixel positions of the ticks and the legend, for the text.
    let (x_ticks, y_ticks, legend);
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        let chart = ChartBuilder::on(&root)
            .margin_top(56)
            .margin_right(24)
            .x_label_area_size(56)
            .y_label_area_size(72)
            .build_cartesian_2d(1.0..max_pairs as f64, 0.0..top)
            .map_err(|e| err(&e))?;
        let grid = RGBColor(225, 225, 225);
        let mut y = 0.0;
        let mut ys = Vec::new();
        while y <= top {
            chart
                .plotting_area()
                .draw(&PathElement::new([(1.0, y), (max_pairs as f64, y)], grid))
                .map_err(|e| err(&e))?;
            ys.push((y, chart.backend_coord(&(1.0, y))));
            y += step;
        }
        let mut xs = Vec::new();
        for p in 1..=max_pairs {
            let x = p as f64;
            chart
                .plotting_area()
                .draw(&PathElement::new([(x, 0.0), (x, top)], grid))
                .map_err(|e| err(&e))?;
            xs.push((p, chart.backend_coord(&(x, 0.0))));
        }
        let frame = [
            (1.0, 0.0),
            (max_pairs as f64, 0.0),
            (max_pairs as f64, top),
            (1.0, top),
            (1.0, 0.0),
        ];
        chart
            .plotting_area()
            .draw(&PathElement::new(frame, BLACK))
            .map_err(|e| err(&e))?;
        for (_, color, mproc) in series {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .map(|&(p, m, x)| (p as f64, rate(if mproc { m } else { x })))
                .collect();
            chart
                .plotting_area()
                .draw(&PathElement::new(points.clone(), color.stroke_width(3)))
                .map_err(|e| err(&e))?;
            for p in points {
                chart
                    .plotting_area()
                    .draw(&Circle::new(p, 4, color.filled()))
                    .map_err(|e| err(&e))?;
            }
        }
        // The legend, top right inside the plot.
        let (right, top_px) = chart.backend_coord(&(max_pairs as f64, top));
        let mut at = Vec::new();
        for (i, (_, color, _)) in series.iter().enumerate() {
            let y = top_px + 24 + 24 * i as i32;
            let x = right - 300;
            root.draw(&PathElement::new(
                [(x, y), (x + 32, y)],
                color.stroke_width(3),
            ))
            .map_err(|e| err(&e))?;
            at.push((x + 40, y));
        }
        root.present().map_err(|e| err(&e))?;
        (x_ticks, y_ticks, legend) = (xs, ys, at);
    }

    let mut canvas = Canvas {
        pixels: &mut pixels,
        font: &font,
    };
    canvas.text(
        &format!("u64 throughput by producer/consumer pairs ({cores} cores)"),
        24.0,
        WIDTH as f32 / 2.0,
        32.0,
        Align::Center,
    );
    let decimals = if step < 1.0 { 1 } else { 0 };
    for (value, (x, y)) in y_ticks {
        let label = format!("{value:.decimals$}");
        canvas.text(&label, 15.0, x as f32 - 8.0, y as f32 + 5.0, Align::Right);
    }
    for (pairs, (x, y)) in &x_ticks {
        canvas.text(
            &pairs.to_string(),
            15.0,
            *x as f32,
            *y as f32 + 22.0,
            Align::Center,
        );
    }
    let (left, bottom) = x_ticks.first().map_or((0, 0), |t| t.1);
    let (right, _) = x_ticks.last().map_or((0, 0), |t| t.1);
    canvas.text(
        "producers = consumers",
        16.0,
        (left + right) as f32 / 2.0,
        bottom as f32 + 46.0,
        Align::Center,
    );
    canvas.text("million messages / s", 16.0, left as f32, 50.0, Align::Left);
    for ((name, _, _), (x, y)) in series.iter().zip(legend) {
        canvas.text(name, 16.0, x as f32, y as f32 + 5.0, Align::Left);
    }

    let image = BitMapBackend::new(path, (WIDTH, HEIGHT));
    let mut image = image;
    image
        .blit_bitmap((0, 0), (WIDTH, HEIGHT), &pixels)
        .map_err(|e| err(&e))?;
    image.present().map_err(|e| err(&e))?;
    Ok(())
}
