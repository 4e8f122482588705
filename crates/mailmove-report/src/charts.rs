//! The page's pictures: bars that set a source's count beside its destination's, and small line
//! charts of a run's progress over time. Inline SVG and CSS only, drawn from numbers alone (no
//! text of a report goes into a chart but through the same escaping as the rest of the page),
//! so the page needs no script and fetches nothing.

use maud::{html, Markup};

use crate::text::{bytes, duration, rate};

/// The width of a bar for `value` out of `max`, in percent: a value that is not zero keeps a
/// sliver, so that "some" never looks like "none".
fn width(value: u64, max: u64) -> f64 {
    if value == 0 || max == 0 {
        return 0.0;
    }
    (value as f64 * 100.0 / max as f64).clamp(0.8, 100.0)
}

/// Two bars, the source's above the destination's, on the same scale (`max`): where they differ
/// in length, the two sides differ.
pub(crate) fn pair_bars(source: u64, destination: u64, max: u64) -> Markup {
    let mismatch = source != destination;
    html! {
        div.bars aria-hidden="true" {
            div.bar.source style=(format!("width:{:.1}%", width(source, max))) {}
            div.bar.destination.mismatch[mismatch] style=(format!("width:{:.1}%", width(destination, max))) {}
        }
    }
}

/// One bar for `value` out of `max`.
pub(crate) fn bar(value: u64, max: u64) -> Markup {
    html! {
        div.bars aria-hidden="true" {
            div.bar.single style=(format!("width:{:.1}%", width(value, max))) {}
        }
    }
}

/// A sample of a run's totals: seconds since the start, messages and bytes copied so far.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    pub secs: f64,
    pub bytes: u64,
}

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 170.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// The two charts of a run's timeline: bytes copied so far, and the throughput between samples.
/// `None` when there are fewer than two samples to draw a line between.
pub(crate) fn timeline(points: &[Point]) -> Option<Markup> {
    let points: Vec<Point> = points.iter().copied().filter(|p| p.secs.is_finite() && p.secs >= 0.0).collect();
    if points.len() < 2 {
        return None;
    }
    let end = points.last().map_or(0.0, |p| p.secs).max(1e-3);
    let cumulative: Vec<(f64, f64)> = points.iter().map(|p| (p.secs, p.bytes as f64)).collect();
    // The rate over each window, drawn as a step: flat over the window it was measured in.
    let mut steps = Vec::with_capacity(points.len() * 2);
    let windows = windows(&points, end / 50.0);
    for pair in windows.windows(2) {
        let (from, to) = (points[pair[0]], points[pair[1]]);
        let per_sec = to.bytes.saturating_sub(from.bytes) as f64 / (to.secs - from.secs);
        steps.push((from.secs, per_sec));
        steps.push((to.secs, per_sec));
    }
    let peak = steps.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    Some(html! {
        div.charts {
            figure.chart {
                (line_chart("copied", "Bytes copied so far", &cumulative, end, |v| bytes(v as u64), true))
                figcaption { "Bytes copied so far, over " (duration(end)) }
            }
            figure.chart {
                (line_chart("throughput", "Throughput", &steps, end, rate, false))
                figcaption { "Throughput between samples (peak " (rate(peak)) ")" }
            }
        }
    })
}

/// The indices of the samples that bound the throughput's windows: each window at least
/// `shortest` seconds long, the first and the last sample always bounds. Bytes are counted when a
/// batch commits, so over an interval much shorter than the others (the run's final sample, taken
/// just after a last commit) a batch's bytes would read as a burst no link ever carried: such an
/// interval joins the window before it.
fn windows(points: &[Point], shortest: f64) -> Vec<usize> {
    let mut bounds = vec![0];
    for (index, point) in points.iter().enumerate().skip(1) {
        let from = points[*bounds.last().unwrap_or(&0)].secs;
        if point.secs - from >= shortest && point.secs > from {
            bounds.push(index);
        }
    }
    let last = points.len() - 1;
    if bounds.last() != Some(&last) && points[last].secs > points[0].secs {
        if bounds.len() > 1 {
            bounds.pop();
        }
        bounds.push(last);
    }
    bounds
}

/// A line chart of `points` (x in seconds from 0 to `end`, y from 0), with its y axis labelled by
/// `label`; `area`: the surface under the line is filled.
fn line_chart(
    name: &str,
    title: &str,
    points: &[(f64, f64)],
    end: f64,
    label: impl Fn(f64) -> String,
    area: bool,
) -> Markup {
    let top = points.iter().map(|(_, y)| *y).fold(0.0, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    let (plot_width, plot_height) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |secs: f64| LEFT + secs.clamp(0.0, end) / end * plot_width;
    let y = |value: f64| TOP + plot_height - value.clamp(0.0, top) / top * plot_height;
    let line: Vec<String> = points.iter().map(|(s, v)| format!("{:.1},{:.1}", x(*s), y(*v))).collect();
    let line = line.join(" ");
    let surface = format!("{:.1},{:.1} {line} {:.1},{:.1}", x(0.0), y(0.0), x(end), y(0.0));
    let ticks = [0.0, 0.5, 1.0];
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title)
            data-chart=(name) data-points=(points.len()) {
            title { (title) }
            @for share in ticks {
                line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(format!("{:.1}", y(top * share)))
                    y2=(format!("{:.1}", y(top * share))) {}
                text.axis x=(LEFT - 6.0) y=(format!("{:.1}", y(top * share) + 4.0)) text-anchor="end" {
                    (label(top * share))
                }
                text.axis x=(format!("{:.1}", x(end * share))) y=(HEIGHT - 6.0)
                    text-anchor=(anchor(share)) {
                    (duration(end * share))
                }
            }
            @if area {
                polygon.area points=(surface) {}
            }
            polyline.line points=(line) {}
        }
    }
}

/// Where an x axis label at `share` of the width hangs from its point: the first and the last
/// inside the chart.
fn anchor(share: f64) -> &'static str {
    if share <= 0.0 {
        "start"
    } else if share >= 1.0 {
        "end"
    } else {
        "middle"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_needs_two_samples_and_draws_each() {
        assert!(timeline(&[Point { secs: 0.0, bytes: 0 }]).is_none());
        let points = [
            Point { secs: 0.0, bytes: 0 },
            Point { secs: 1.0, bytes: 1_000_000 },
            Point { secs: 3.0, bytes: 2_000_000 },
        ];
        let svg = timeline(&points).unwrap().into_string();
        assert!(svg.contains(r#"data-chart="copied" data-points="3""#), "{svg}");
        // Two intervals, each a flat step of two points.
        assert!(svg.contains(r#"data-chart="throughput" data-points="4""#), "{svg}");
        assert!(svg.contains("peak 1.0 MB/s"), "{svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn a_burst_at_the_end_joins_the_window_before_it() {
        let points = [
            Point { secs: 0.0, bytes: 0 },
            Point { secs: 10.0, bytes: 10_000_000 },
            // The final sample, a hundredth of a second after a last commit of 1 MB.
            Point { secs: 10.01, bytes: 11_000_000 },
        ];
        assert_eq!(windows(&points, 10.01 / 50.0), [0, 2]);
        let svg = timeline(&points).unwrap().into_string();
        assert!(svg.contains("peak 1.1 MB/s"), "not 100 MB/s: {svg}");
        let same_time = [Point { secs: 0.0, bytes: 0 }, Point { secs: 0.0, bytes: 5 }];
        assert_eq!(windows(&same_time, 0.0), [0], "no window of no time");
    }

    #[test]
    fn bars_keep_a_sliver_for_small_values_and_mark_a_difference() {
        assert_eq!(width(0, 10), 0.0);
        assert_eq!(width(1, 1_000_000), 0.8);
        assert_eq!(width(10, 10), 100.0);
        assert!(pair_bars(3, 2, 3).into_string().contains("mismatch"));
        assert!(!pair_bars(3, 3, 3).into_string().contains("mismatch"));
    }
}
