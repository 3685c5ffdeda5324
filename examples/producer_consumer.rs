//! Producer and consumer processes moving messages through one
//! `mproc::PodQueue`, with throughput and a checksum that proves nothing was
//! lost or duplicated.
//!
//! ```text
//! cargo run --release --example producer_consumer -- \
//!     --producers 2 --consumers 2 --messages 10000000 --kind u64 --batch 1
//! ```
//!
//! Options (all optional):
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `--producers N` | 2 | producer processes |
//! | `--consumers N` | 2 | consumer processes |
//! | `--messages N` | 10000000 | messages in total |
//! | `--kind K` | `u64` | `u64` (8 bytes), `b64` (64 bytes) or `b256` (256 bytes) |
//! | `--capacity N` | 4096 | queue slots |
//! | `--batch N` | 1 | 1: `put`/`get` one at a time; more: `put_many`/`get_many` in runs of N |

use std::process::ExitCode;
use std::time::{Duration, Instant};

use mproc::{Event, PodQueue, Process, ShmSafe};

/// What a producer sends: built from (producer, sequence number).
trait Message: ShmSafe + Default {
    const NAME: &'static str;
    fn make(producer: u64, seq: u64) -> Self;
    fn stop() -> Self;
    fn is_stop(&self) -> bool;
    /// A well-mixed digest, summed (wrapping) over messages: a loss, a
    /// duplicate or a corrupted message changes the sum.
    fn digest(&self) -> u64;
}

/// splitmix64: a cheap, well-mixed 64-bit hash.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn id(producer: u64, seq: u64) -> u64 {
    (producer << 40) | seq
}

impl Message for u64 {
    const NAME: &'static str = "u64 (8 B)";
    fn make(producer: u64, seq: u64) -> Self {
        id(producer, seq)
    }
    fn stop() -> Self {
        u64::MAX
    }
    fn is_stop(&self) -> bool {
        *self == u64::MAX
    }
    fn digest(&self) -> u64 {
        mix(*self)
    }
}

impl<const N: usize> Message for [u64; N]
where
    [u64; N]: Default,
{
    const NAME: &'static str = if N == 8 {
        "64-byte blob"
    } else {
        "256-byte blob"
    };
    fn make(producer: u64, seq: u64) -> Self {
        let first = id(producer, seq);
        std::array::from_fn(|i| first.wrapping_add(i as u64).rotate_left(i as u32))
    }
    fn stop() -> Self {
        [u64::MAX; N]
    }
    fn is_stop(&self) -> bool {
        self[0] == u64::MAX
    }
    fn digest(&self) -> u64 {
        self.iter().fold(0u64, |acc, &word| mix(acc ^ word))
    }
}

const USAGE: &str = "usage: producer_consumer [--producers N] [--consumers N] \
    [--messages N] [--kind u64|b64|b256] [--capacity N] [--batch N]";

struct Options {
    producers: u64,
    consumers: u64,
    messages: u64,
    kind: String,
    capacity: usize,
    batch: usize,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Self {
            producers: 2,
            consumers: 2,
            messages: 10_000_000,
            kind: "u64".into(),
            capacity: 4096,
            batch: 1,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("{flag} needs a positive number, not {value:?}"))
            };
            match flag.as_str() {
                "--producers" => options.producers = number()?,
                "--consumers" => options.consumers = number()?,
                "--messages" => options.messages = number()?,
                "--capacity" => options.capacity = number()? as usize,
                "--batch" => options.batch = number()? as usize,
                "--kind" if ["u64", "b64", "b256"].contains(&value.as_str()) => {
                    options.kind = value
                }
                "--kind" => return Err(format!("--kind is u64, b64 or b256, not {value:?}")),
                _ => return Err(format!("unknown option {flag}\n{USAGE}")),
            }
        }
        if options.producers > 1 << 20 || options.messages >= 1 << 40 {
            return Err("at most 2^20 producers and 2^40 messages".into());
        }
        Ok(options)
    }
}

/// (messages, checksum)
type Tally = (u64, u64);

fn run<M: Message>(o: &Options) -> Result<bool, Box<dyn std::error::Error>> {
    let queue = PodQueue::<M>::new(o.capacity)?;
    let start = Event::new()?;
    let share = |p: u64| o.messages / o.producers + u64::from(p < o.messages % o.producers);

    let mut producers = Vec::new();
    for p in 0..o.producers {
        let (queue, start, count, batch) = (queue.clone(), start.clone(), share(p), o.batch);
        producers.push(Process::spawn(move || -> Tally {
            start.wait();
            let mut digest = 0u64;
            if batch == 1 {
                for seq in 0..count {
                    let message = M::make(p, seq);
                    digest = digest.wrapping_add(message.digest());
                    queue.put(message);
                }
            } else {
                let mut run = Vec::with_capacity(batch);
                let mut seq = 0;
                while seq < count {
                    run.clear();
                    while run.len() < batch && seq < count {
                        let message = M::make(p, seq);
                        digest = digest.wrapping_add(message.digest());
                        run.push(message);
                        seq += 1;
                    }
                    queue.put_many(&run);
                }
            }
            (count, digest)
        })?);
    }
    let mut consumers = Vec::new();
    for _ in 0..o.consumers {
        let (queue, start, batch) = (queue.clone(), start.clone(), o.batch);
        consumers.push(Process::spawn(move || -> Tally {
            start.wait();
            let (mut count, mut digest) = (0u64, 0u64);
            let mut out = vec![M::default(); batch];
            loop {
                let n = if batch == 1 {
                    out[0] = queue.get();
                    1
                } else {
                    queue.get_many(&mut out)
                };
                for (i, message) in out[..n].iter().enumerate() {
                    if message.is_stop() {
                        // Every message precedes every stop marker, so the
                        // rest of this batch is other consumers' markers:
                        // hand them back.
                        for _ in i + 1..n {
                            queue.put(M::stop());
                        }
                        return (count, digest);
                    }
                    count += 1;
                    digest = digest.wrapping_add(message.digest());
                }
            }
        })?);
    }

    println!(
        "mproc producer/consumer: {} producers -> {} consumers, {} x {}, capacity {}, batch {}",
        o.producers,
        o.consumers,
        o.messages,
        M::NAME,
        o.capacity,
        o.batch
    );
    let began = Instant::now();
    start.set();
    let mut sent: Tally = (0, 0);
    for producer in &mut producers {
        let (count, digest) = producer.join()?;
        sent = (sent.0 + count, sent.1.wrapping_add(digest));
    }
    // One stop marker per consumer, after every message: each consumer stops
    // at the first marker it gets (and hands back any others its batch took).
    for _ in 0..o.consumers {
        queue.put_timeout(M::stop(), Duration::from_secs(60))?;
    }
    let mut received: Tally = (0, 0);
    for consumer in &mut consumers {
        let (count, digest) = consumer.join()?;
        received = (received.0 + count, received.1.wrapping_add(digest));
    }
    let elapsed = began.elapsed().as_secs_f64();

    let ok = sent == received && sent.0 == o.messages && queue.is_empty();
    let rate = o.messages as f64 / elapsed;
    println!(
        "  sent      {:>12} messages   checksum {:#018x}",
        sent.0, sent.1
    );
    println!(
        "  received  {:>12} messages   checksum {:#018x}   {}",
        received.0,
        received.1,
        if ok {
            "OK: nothing lost, nothing duplicated"
        } else {
            "MISMATCH"
        }
    );
    println!(
        "  time      {elapsed:>12.3} s          {:.2} M msg/s   {:.0} MB/s",
        rate / 1e6,
        rate * size_of::<M>() as f64 / 1e6
    );
    Ok(ok)
}

fn main() -> ExitCode {
    if std::env::args().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("producer_consumer: {message}");
            return ExitCode::from(2);
        }
    };
    let result = match options.kind.as_str() {
        "u64" => run::<u64>(&options),
        "b64" => run::<[u64; 8]>(&options),
        _ => run::<[u64; 32]>(&options),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("producer_consumer: {error}");
            ExitCode::FAILURE
        }
    }
}
