//! The PNG chart of throughput by producer/consumer pairs.

use std::path::Path;

use plotters::prelude::*;

/// Where a TrueType font is commonly found; the chart needs one for its
/// text (plotters draws text through ab_glyph, with no system library).
const FONTS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

fn load_font() -> Result<(), String> {
    let path = FONTS
        .iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| format!("no TrueType font found (looked for {})", FONTS.join(", ")))?;
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    // The font table of plotters keeps `&'static` bytes: one font for the
    // whole run.
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into()))
        .map_err(|_| format!("{path}: not a usable font"))
}

/// Draws million messages per second by pairs, one line per
/// implementation: `rows` are (pairs, mproc s/msg, crossbeam s/msg).
pub fn throughput(path: &Path, rows: &[(usize, f64, f64)], cores: usize) -> Result<(), String> {
    load_font()?;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let rate = |s: f64| 1e-6 / s;
    let top = rows
        .iter()
        .map(|&(_, m, x)| rate(m).max(rate(x)))
        .fold(0.0, f64::max)
        * 1.15;
    let max_pairs = rows.iter().map(|r| r.0).max().unwrap_or(1);
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("u64 throughput by producer/consumer pairs ({cores} cores)"),
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(1..max_pairs, 0.0..top.max(1e-3))
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("producers = consumers")
        .y_desc("million messages / s")
        .x_labels(max_pairs)
        .label_style(("sans-serif", 16))
        .draw()
        .map_err(|e| err(&e))?;
    let series = [
        ("mproc PodQueue (processes)", RGBColor(200, 60, 30), 1),
        ("crossbeam ArrayQueue (threads)", RGBColor(40, 90, 180), 2),
    ];
    for (name, color, column) in series {
        let points: Vec<(usize, f64)> = rows
            .iter()
            .map(|&(p, m, x)| (p, rate(if column == 1 { m } else { x })))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color.stroke_width(3)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
