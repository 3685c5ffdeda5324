//! A stand-in for the tutorials' parallel downloaders that needs no
//! network: the "pages" are files this example writes to a temporary
//! directory, and a pool of workers fetches (reads) and parses each one.
//! One input is bad (a page that does not exist): its error is reported on
//! its line while the others succeed.
//!
//! ```text
//! cargo run --release --example parallel_scrape
//! ```
//!
//! Ports the shape of this Python program:
//!
//! ```python
//! from multiprocessing import Pool
//!
//! def scrape(url):
//!     try:
//!         html = fetch(url)
//!         return url, f'{title(html)}: {len(links(html))} links, {len(words(html))} words'
//!     except Exception as error:
//!         return url, f'error: {error}'
//!
//! if __name__ == '__main__':
//!     with Pool(4) as pool:
//!         for url, summary in pool.imap(scrape, urls):
//!             print(url, summary)
//! ```
//!
//! Prints one line per input, in input order (the error text comes from
//! the OS):
//!
//! ```text
//! page-0.html  Page 0: 1 links, 13 words
//! page-1.html  Page 1: 2 links, 16 words
//! ...
//! missing.html error: cannot fetch .../missing.html: No such file or directory (os error 2)
//! ...
//! scraped 8 pages, 1 failed
//! ```

use std::path::{Path, PathBuf};

use mproc::{Pool, PoolError};

/// What a worker reports for one page.
type Scraped = Result<String, String>;

/// Fetches and parses one page: its title, links and words.
fn scrape(path: PathBuf) -> Scraped {
    let html = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot fetch {}: {error}", path.display()))?;
    let title = between(&html, "<title>", "</title>")
        .ok_or_else(|| format!("{} has no title", path.display()))?;
    let links = html.matches("<a href=").count();
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let words = text.split_whitespace().count();
    Ok(format!("{title}: {links} links, {words} words"))
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// Writes the pages: page `n` has `n + 1` links.
fn write_pages(dir: &Path, count: usize) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut paths = Vec::new();
    for n in 0..count {
        let links: String = (0..=n)
            .map(|k| format!("<a href=\"page-{k}.html\">to page {k}</a> "))
            .collect();
        let html = format!(
            "<html><head><title>Page {n}</title></head><body><p>Welcome to page number {n} \
             of the site.</p>{links}</body></html>"
        );
        let path = dir.join(format!("page-{n}.html"));
        std::fs::write(&path, html)?;
        paths.push(path);
    }
    Ok(paths)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    mproc::init();
    let dir = std::env::temp_dir().join(format!("mproc-scrape-{}", std::process::id()));
    let mut inputs = write_pages(&dir, 8)?;
    // The bad input, among the good ones.
    inputs.insert(3, dir.join("missing.html"));

    let pool = Pool::new(4)?;
    let mut failed = 0;
    let names: Vec<String> = inputs
        .iter()
        .map(|path| {
            path.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for (name, scraped) in names.iter().zip(pool.imap(scrape, inputs.clone())) {
        // The outer error is the pool's (a worker that died); the inner one
        // is the page's.
        let scraped: Scraped = scraped.map_err(|error: PoolError| error.to_string())?;
        match scraped {
            Ok(summary) => println!("{name:<12} {summary}"),
            Err(error) => {
                failed += 1;
                println!("{name:<12} error: {error}");
            }
        }
    }
    println!("scraped {} pages, {failed} failed", inputs.len() - failed);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
