//! mproc against Python's `multiprocessing` and its Rust peers: every
//! workload, every implementation, in one process tree and interleaved
//! rounds, then one table.
//!
//! ```text
//! cargo run --release --example showdown                 # the full run
//! cargo run --release --example showdown -- --quick      # a smoke run
//! cargo run --release --example showdown -- --help       # the flags
//! ```
//!
//! Each round runs one measurement of every (workload, implementation)
//! case, in registry order, then Python's (`benches/python/showdown.py`,
//! skipped with a note without `python3`); after all rounds the table
//! gives, per case, the median and the min–max across rounds, and how many
//! times faster mproc is than each peer (> 1: mproc wins). Then the
//! targets, with their verdicts, and the scaling runs: throughput by
//! producer/consumer pairs (also drawn as a PNG) and pool `map` by item
//! count with the peak RSS of the process calling it.
//!
//! Each workload family is a module returning its cases (`stream`,
//! `roundtrip`, `sync`, `spawn`, `pool`, `manager`); [`registry`] lists them.

mod case;
mod chart;
mod manager;
mod pool;
mod python;
mod roundtrip;
mod scaling;
mod spawn;
mod stream;
mod sync;

// Worker crews, raw frames, message types and trivial children shared
// with the criterion benches.
#[path = "../../benches/common/crew.rs"]
mod crew;
#[path = "../../benches/common/frame.rs"]
mod frame;
#[path = "../../benches/common/message.rs"]
mod message;
#[path = "../../benches/common/spawn.rs"]
mod spawn_common;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use case::{Case, Unit, Workload};

/// Every case, in the order of the table, and notes on what was left out.
/// A new workload family is one more module with a `cases()` function and
/// one more line here.
fn registry() -> (Vec<Case>, Vec<String>) {
    let mut cases = Vec::new();
    cases.extend(stream::cases());
    cases.extend(roundtrip::cases());
    cases.extend(sync::cases());
    let (spawn, notes) = spawn::cases();
    cases.extend(spawn);
    cases.extend(pool::cases());
    cases.extend(manager::cases());
    (cases, notes)
}

const HELP: &str = "\
cargo run --release --example showdown -- [FLAGS]

  --quick            a short smoke run: 3 rounds, shorter measurements,
                     Python scaled down, pool scaling up to 10^6 items
  --rounds N         rounds of every case (default 5; --quick: 3)
  --budget-ms MS     time of one measurement of one case (default 50;
                     --quick: 20)
  --only TEXT[,TEXT] only the cases whose workload key or label, or
                     implementation, contains one of the TEXTs
                     (case-insensitive); the scaling runs only if one
                     TEXT is \"scaling\"
  --no-python        leave Python out
  --no-scaling       leave the scaling runs out
  --markdown PATH    where to write the markdown report (default
                     $CARGO_TARGET_DIR/showdown/table.md, target/ without it)
  --chart PATH       where to write the PNG chart (default next to the
                     markdown report, throughput.png)
";

struct Config {
    quick: bool,
    rounds: usize,
    budget: Duration,
    only: Option<String>,
    python: bool,
    scaling: bool,
    markdown: PathBuf,
    chart: Option<PathBuf>,
}

impl Config {
    fn parse() -> Result<Self, String> {
        let mut args = std::env::args().skip(1);
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"))
            .join("showdown");
        let mut config = Config {
            quick: false,
            rounds: 0,
            budget: Duration::ZERO,
            only: None,
            python: true,
            scaling: true,
            markdown: dir.join("table.md"),
            chart: None,
        };
        let value = |args: &mut dyn Iterator<Item = String>, flag: &str| {
            args.next().ok_or_else(|| format!("{flag} needs a value"))
        };
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => config.quick = true,
                "--rounds" => {
                    config.rounds = value(&mut args, &arg)?
                        .parse()
                        .map_err(|e| format!("--rounds: {e}"))?
                }
                "--budget-ms" => {
                    config.budget = Duration::from_millis(
                        value(&mut args, &arg)?
                            .parse()
                            .map_err(|e| format!("--budget-ms: {e}"))?,
                    )
                }
                "--only" => config.only = Some(value(&mut args, &arg)?.to_lowercase()),
                "--no-python" => config.python = false,
                "--no-scaling" => config.scaling = false,
                "--markdown" => config.markdown = value(&mut args, &arg)?.into(),
                "--chart" => config.chart = Some(value(&mut args, &arg)?.into()),
                "--help" | "-h" => {
                    print!("{HELP}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown flag {other}\n\n{HELP}")),
            }
        }
        if config.rounds == 0 {
            config.rounds = if config.quick { 3 } else { 5 };
        }
        if config.budget.is_zero() {
            config.budget = Duration::from_millis(if config.quick { 20 } else { 50 });
        }
        if let Some(only) = &config.only {
            config.scaling &= only.split(',').any(|t| t == "scaling");
        }
        Ok(config)
    }

    fn selects(&self, w: &Workload, implementation: &str) -> bool {
        match &self.only {
            None => true,
            Some(texts) => texts.split(',').any(|text| {
                [w.key.as_str(), w.label.as_str(), implementation]
                    .iter()
                    .any(|s| s.to_lowercase().contains(text))
            }),
        }
    }

    fn chart_path(&self) -> PathBuf {
        self.chart.clone().unwrap_or_else(|| {
            self.markdown
                .parent()
                .unwrap_or(std::path::Path::new("."))
                .join("throughput.png")
        })
    }
}

/// Waits (up to two seconds) for this process to be down to its one
/// thread: thread pools end their threads asynchronously, and the next
/// case may fork.
pub fn settle_threads() {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if matches!(mproc::mproc_os::process::thread_count(), Ok(1)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The median of `values` (sorted in place); NaN when empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// One row of the table: a case's measurements across rounds, seconds
/// per operation.
struct Row {
    workload: Workload,
    implementation: String,
    mproc: bool,
    samples: Vec<f64>,
}

impl Row {
    fn median(&self) -> f64 {
        median(&mut self.samples.clone())
    }
    fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.samples.iter().copied().fold(0.0, f64::max)
    }
}

/// A value of `w` given in seconds per operation, in the unit readers
/// expect: a rate (M/s, k/s or GB/s) or a time (ns, us, ms).
fn show(w: &Workload, seconds: f64) -> String {
    if !seconds.is_finite() || seconds <= 0.0 {
        return "-".into();
    }
    match w.unit {
        Unit::Rate if w.bytes > 0 => format!("{:.2} GB/s", w.bytes as f64 / seconds / 1e9),
        Unit::Rate => {
            let rate = 1.0 / seconds;
            if rate >= 1e6 {
                format!("{:.2} M/s", rate / 1e6)
            } else if rate >= 1e3 {
                format!("{:.1} k/s", rate / 1e3)
            } else {
                format!("{rate:.0} /s")
            }
        }
        Unit::Latency => time(seconds),
    }
}

fn time(seconds: f64) -> String {
    if seconds < 1e-7 {
        format!("{:.1} ns", seconds * 1e9)
    } else if seconds < 1e-6 {
        format!("{:.0} ns", seconds * 1e9)
    } else if seconds < 1e-3 {
        format!("{:.2} us", seconds * 1e6)
    } else {
        format!("{:.2} ms", seconds * 1e3)
    }
}

/// min–max in the unit of `show` (the best first for rates).
fn range(w: &Workload, row: &Row) -> String {
    let (lo, hi) = (row.min(), row.max());
    if w.unit == Unit::Rate {
        format!("{} – {}", show(w, hi), show(w, lo))
    } else {
        format!("{} – {}", show(w, lo), show(w, hi))
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The time now in UTC, `YYYY-MM-DD HH:MM` (the civil-from-days
/// algorithm of Howard Hinnant's date library).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "{cpu}, {} cores, Linux {kernel}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// A target's verdict: `met`, or `MISSED` and by how much.
struct Verdict {
    target: &'static str,
    wanted: &'static str,
    measured: String,
    /// The same from the best round of each side: what a quiet machine
    /// approaches.
    best: String,
    verdict: String,
}

fn targets(rows: &[Row]) -> Vec<Verdict> {
    let find = |key: &str, implementation: &str| {
        rows.iter()
            .find(|r| r.workload.key == key && r.implementation == implementation)
    };
    let python = python::NAME;
    enum Want {
        /// mproc at least this many times faster than the peer.
        Faster(f64),
        /// mproc's time at most this many times the peer's.
        AtMostTimes(f64),
        /// mproc's time at most this many seconds.
        AtMost(f64),
    }
    // (target, wanted, workload key, mproc implementation, peer
    // implementation or "", what is wanted): one line per target.
    let list = [
        (
            "u64 1P/1C: mproc PodQueue vs crossbeam ArrayQueue (threads)",
            ">= 1.0x",
            "stream/u64/1p1c",
            "mproc PodQueue",
            "crossbeam ArrayQueue (threads)",
            Want::Faster(1.0),
        ),
        (
            "u64 2P/2C: mproc PodQueue vs crossbeam ArrayQueue (threads)",
            ">= 1.0x",
            "stream/u64/2p2c",
            "mproc PodQueue",
            "crossbeam ArrayQueue (threads)",
            Want::Faster(1.0),
        ),
        (
            "u64 1P/1C: mproc PodQueue vs Python Queue",
            ">= 100x",
            "stream/u64/1p1c",
            "mproc PodQueue",
            python,
            Want::Faster(100.0),
        ),
        (
            "blocking round trip (mproc PodQueue pair)",
            "<= 1 us",
            "roundtrip/u64",
            "mproc PodQueue pair",
            "",
            Want::AtMost(1e-6),
        ),
        (
            "Fork spawn + join vs raw fork + waitpid",
            "<= 1.3x time",
            "spawn/join",
            "mproc Fork",
            "raw fork + waitpid",
            Want::AtMostTimes(1.3),
        ),
        (
            "pool map 1M: mproc Pool vs Python Pool",
            ">= 10x",
            "pool/map_1m",
            "mproc Pool",
            python,
            Want::Faster(10.0),
        ),
        (
            "apply_async round trip: mproc vs Python",
            ">= 20x",
            "pool/apply_async",
            "mproc Pool",
            python,
            Want::Faster(20.0),
        ),
        (
            "manager round trip: mproc vs Python",
            ">= 10x",
            "manager/dict_roundtrip",
            "mproc Manager",
            python,
            Want::Faster(10.0),
        ),
        (
            "manager list push: mproc vs Python",
            ">= 10x",
            "manager/list_push",
            "mproc Manager",
            python,
            Want::Faster(10.0),
        ),
    ];
    let mut out = Vec::new();
    for (target, wanted, key, mine, peer, want) in list {
        let (Some(mine), peer) = (find(key, mine), find(key, peer)) else {
            continue;
        };
        let (m, p) = (Some(mine.median()), peer.map(Row::median));
        let best = match (&want, peer) {
            (Want::Faster(_), Some(peer)) => format!("{:.2}x", peer.min() / mine.min()),
            (Want::AtMostTimes(_), Some(peer)) => {
                format!("{:.2}x time", mine.min() / peer.min())
            }
            (Want::AtMost(_), _) => time(mine.min()),
            _ => continue,
        };
        let (measured, verdict) = match (want, m, p) {
            (Want::Faster(goal), Some(m), Some(p)) => {
                let x = p / m;
                let verdict = if x >= goal {
                    "met".to_owned()
                } else {
                    format!(
                        "MISSED by {:.0}% ({x:.2}x of {goal}x)",
                        (1.0 - x / goal) * 100.0
                    )
                };
                (format!("{x:.2}x"), verdict)
            }
            (Want::AtMostTimes(goal), Some(m), Some(p)) => {
                let x = m / p;
                let verdict = if x <= goal {
                    "met".to_owned()
                } else {
                    format!(
                        "MISSED by {:.0}% ({x:.2}x, wanted {goal}x)",
                        (x / goal - 1.0) * 100.0
                    )
                };
                (format!("{x:.2}x time"), verdict)
            }
            (Want::AtMost(goal), Some(m), _) => {
                let verdict = if m <= goal {
                    "met".to_owned()
                } else {
                    format!(
                        "MISSED by {:.0}% ({} over)",
                        (m / goal - 1.0) * 100.0,
                        time(m - goal)
                    )
                };
                (time(m), verdict)
            }
            _ => continue,
        };
        out.push(Verdict {
            target,
            wanted,
            measured,
            best,
            verdict,
        });
    }
    out
}

/// Prints `text` and keeps it for the markdown report.
struct Report {
    markdown: String,
}

impl Report {
    fn line(&mut self, text: impl AsRef<str>) {
        let _ = writeln!(self.markdown, "{}", text.as_ref());
    }
}

fn main() {
    // Children started with `StartMethod::Spawn`, and a fork server run
    // again from a multi-threaded process, run this binary again: `init`
    // dispatches them before anything below happens twice.
    mproc::init();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(scaling::CHILD_ARG) {
        let items = args.get(2).and_then(|a| a.parse().ok()).expect("items");
        let lazy = args.get(3).is_some_and(|a| a == "true");
        scaling::child(items, lazy);
        return;
    }
    let config = match Config::parse() {
        Ok(config) => config,
        Err(why) => {
            eprintln!("{why}");
            std::process::exit(2);
        }
    };
    let started = Instant::now();
    let load_start = load_average();
    let machine = machine();
    let date = utc_now();
    println!("mproc showdown: {machine}; {date}");
    println!("load average at start: {load_start}");

    let (all, mut notes) = registry();
    let mut cases: Vec<Case> = all
        .into_iter()
        .filter(|c| config.selects(&c.workload, &c.implementation))
        .collect();
    let workloads: Vec<Workload> = cases.iter().fold(Vec::new(), |mut seen, c| {
        if !seen.iter().any(|w: &Workload| w.key == c.workload.key) {
            seen.push(c.workload.clone());
        }
        seen
    });
    let python_scale = if config.quick { 0.25 } else { 1.0 };
    let mut python = config.python && !workloads.is_empty();

    eprintln!("calibrating {} cases ...", cases.len());
    for case in &mut cases {
        case.calibrate(config.budget);
    }
    let mut rows: Vec<Row> = cases
        .iter()
        .map(|c| Row {
            workload: c.workload.clone(),
            implementation: c.implementation.clone(),
            mproc: c.mproc,
            samples: Vec::new(),
        })
        .collect();
    let mut python_rows: Vec<Row> = Vec::new();
    for round in 1..=config.rounds {
        eprintln!(
            "round {round}/{} (load {}, {:.0} s in)",
            config.rounds,
            load_average(),
            started.elapsed().as_secs_f64()
        );
        for (case, row) in cases.iter_mut().zip(&mut rows) {
            row.samples.push(case.measure());
        }
        if python {
            match python::run(python_scale) {
                Ok(results) => {
                    for w in &workloads {
                        let Some(&seconds) = results.get(&w.key) else {
                            continue;
                        };
                        match python_rows.iter_mut().find(|r| r.workload.key == w.key) {
                            Some(row) => row.samples.push(seconds),
                            None => python_rows.push(Row {
                                workload: w.clone(),
                                implementation: python::NAME.into(),
                                mproc: false,
                                samples: vec![seconds],
                            }),
                        }
                    }
                }
                Err(why) => {
                    notes.push(format!("Python skipped: {why}"));
                    python = false;
                }
            }
        }
    }
    // Python's rows after the Rust ones of their workload.
    for row in python_rows {
        let at = rows
            .iter()
            .rposition(|r| r.workload.key == row.workload.key)
            .map_or(rows.len(), |i| i + 1);
        rows.insert(at, row);
    }

    let mut report = Report {
        markdown: String::new(),
    };
    report.line(format!(
        "Machine: {machine}. Run at {date}; load average at start: {load_start}. {} rounds, {} ms per measurement.",
        config.rounds,
        config.budget.as_millis()
    ));
    report.line("");
    report.line("| Workload | Implementation | Median | Min – max | mproc is x faster |");
    report.line("|---|---|---:|---:|---:|");
    println!(
        "\n{:<44} {:<32} {:>12} {:>26} {:>9}",
        "workload", "implementation", "median", "min – max", "mproc x"
    );
    for w in &workloads {
        let group: Vec<&Row> = rows.iter().filter(|r| r.workload.key == w.key).collect();
        let headline = group.iter().find(|r| r.mproc).map(|r| r.median());
        for (i, row) in group.iter().enumerate() {
            let ratio = match headline {
                Some(m) if !(row.mproc && i == 0) => format!("{:.2}x", row.median() / m),
                _ => "".into(),
            };
            let label = if i == 0 { w.label.as_str() } else { "" };
            println!(
                "{label:<44} {:<32} {:>12} {:>26} {ratio:>9}",
                row.implementation,
                show(w, row.median()),
                range(w, row)
            );
            report.line(format!(
                "| {label} | {} | {} | {} | {ratio} |",
                row.implementation,
                show(w, row.median()),
                range(w, row)
            ));
        }
    }
    report.line("");
    report.line(
        "mproc is x faster: the median time per operation of the row over that of the \
         first mproc row of the workload (> 1: mproc wins). Rows marked (threads) run in one process; all the others run across processes.",
    );

    let verdicts = targets(&rows);
    if !verdicts.is_empty() {
        println!(
            "\n{:<62} {:>14} {:>14} {:>14}  verdict (on the medians)",
            "target", "wanted", "median", "best rounds"
        );
        report.line("");
        report.line("| Target | Wanted | Median | Best rounds | Verdict (on the medians) |");
        report.line("|---|---:|---:|---:|---|");
        for v in &verdicts {
            println!(
                "{:<62} {:>14} {:>14} {:>14}  {}",
                v.target, v.wanted, v.measured, v.best, v.verdict
            );
            report.line(format!(
                "| {} | {} | {} | {} | {} |",
                v.target, v.wanted, v.measured, v.best, v.verdict
            ));
        }
    }

    if config.scaling {
        scaling_report(&config, &mut report);
    }

    for note in &notes {
        println!("note: {note}");
        report.line(format!("\nNote: {note}"));
    }
    let load_end = load_average();
    println!(
        "\nload average at end: {load_end}; {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    report.line(format!("\nLoad average at end: {load_end}."));
    if let Some(dir) = config.markdown.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&config.markdown, &report.markdown) {
        Ok(()) => println!("markdown report: {}", config.markdown.display()),
        Err(e) => eprintln!("markdown report not written: {e}"),
    }
}

fn scaling_report(config: &Config, report: &mut Report) {
    let max_pairs = 8;
    eprintln!("scaling: 1..{max_pairs} producer/consumer pairs ...");
    let reps = if config.quick { 1 } else { 3 };
    let rows = scaling::pairs(max_pairs, reps, config.budget);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\nscaling, u64 stream ({cores} cores): ns per message");
    println!(
        "{:<8} {:>14} {:>14} {:>10}",
        "pairs", "mproc", "crossbeam", "mproc x"
    );
    report.line("");
    report.line(format!(
        "Scaling, u64 stream on {cores} cores: ns per message (mproc PodQueue, processes; crossbeam ArrayQueue, threads)"
    ));
    report.line("");
    report.line("| Pairs | mproc ns/msg | crossbeam ns/msg | mproc is x faster |");
    report.line("|---:|---:|---:|---:|");
    for &(pairs, m, x) in &rows {
        println!(
            "{pairs:<8} {:>14.1} {:>14.1} {:>9.2}x",
            m * 1e9,
            x * 1e9,
            x / m
        );
        report.line(format!(
            "| {pairs} | {:.1} | {:.1} | {:.2}x |",
            m * 1e9,
            x * 1e9,
            x / m
        ));
    }
    let chart = config.chart_path();
    if let Some(dir) = chart.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match chart::throughput(&chart, &rows, cores) {
        Ok(()) => println!("chart: {}", chart.display()),
        Err(why) => println!("chart not drawn: {why}"),
    }

    let max_exp = if config.quick { 6 } else { 7 };
    eprintln!("scaling: pool map 10^3..10^{max_exp} items, a fresh process each ...");
    match scaling::pool_sizes(max_exp, reps) {
        Ok(rows) => {
            println!("\nscaling, pool map (a fresh process per run; median of {reps})");
            println!(
                "{:>10} {:<22} {:>10} {:>12} {:>12} {:>12}",
                "items", "verb", "seconds", "ns/item", "peak RSS", "before"
            );
            report.line("");
            report.line(
                format!("Scaling, pool map of a trivial function (a fresh process per run, median of {reps} runs; peak RSS of that process, the largest of the runs)"),
            );
            report.line("");
            report.line("| Items | Verb | Time | ns per item | Peak RSS | RSS before the pool |");
            report.line("|---:|---|---:|---:|---:|---:|");
            for r in rows {
                let verb = if r.lazy {
                    "imap, folded as it goes"
                } else {
                    "map, into a Vec"
                };
                let ns = r.seconds / r.items as f64 * 1e9;
                println!(
                    "{:>10} {verb:<22} {:>10.3} {ns:>12.1} {:>9} MiB {:>8} MiB",
                    r.items,
                    r.seconds,
                    r.peak_kib / 1024,
                    r.base_kib / 1024
                );
                report.line(format!(
                    "| {} | {verb} | {} | {ns:.1} | {} MiB | {} MiB |",
                    r.items,
                    time(r.seconds),
                    r.peak_kib / 1024,
                    r.base_kib / 1024
                ));
            }
        }
        Err(why) => println!("pool scaling not measured: {why}"),
    }
}
