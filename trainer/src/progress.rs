// SPDX-License-Identifier: MIT OR Apache-2.0
//! Progress of long commands (`train`, `synth`): an indicatif bar on a terminal; a line on stderr every tenth of the
//! work or every 30 seconds otherwise (CI logs, nohup, `| tee`), so a log shows where a run is and how fast it goes.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Where progress goes.
pub struct Progress {
    bar: Option<ProgressBar>,
    lines: Option<Mutex<Lines>>,
}

struct Lines {
    what: String,
    total: u64,
    pos: u64,
    start: Instant,
    started_at: u64,
    last: Instant,
    next_mark: u64,
    message: String,
}

const EVERY: Duration = Duration::from_secs(30);

impl Progress {
    /// Progress over `total` steps of `what`: a bar (indicatif `template`) when stderr is a terminal, lines when it
    /// is not, nothing when `enabled` is false (library callers and tests).
    pub fn new(enabled: bool, what: &str, total: u64, template: &str) -> Progress {
        if !enabled {
            return Progress { bar: None, lines: None };
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what.to_owned());
            return Progress { bar: Some(bar), lines: None };
        }
        let now = Instant::now();
        let lines = Lines {
            what: what.to_owned(),
            total,
            pos: 0,
            start: now,
            started_at: 0,
            last: now,
            next_mark: total.div_ceil(10).max(1),
            message: String::new(),
        };
        Progress { bar: None, lines: Some(Mutex::new(lines)) }
    }

    /// Start at `pos` (a resumed run).
    pub fn set_position(&self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        }
        if let Some(l) = &self.lines {
            let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
            (l.pos, l.started_at) = (pos, pos);
            while l.next_mark <= pos {
                l.next_mark += l.total.div_ceil(10).max(1);
            }
        }
    }

    /// The text beside the count (loss, speed).
    pub fn set_message(&self, message: String) {
        if let Some(b) = &self.bar {
            b.set_message(message);
        } else if let Some(l) = &self.lines {
            l.lock().unwrap_or_else(|e| e.into_inner()).message = message;
        }
    }

    /// One more step done.
    pub fn inc(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
        if let Some(l) = &self.lines {
            let mut l = l.lock().unwrap_or_else(|e| e.into_inner());
            l.pos += 1;
            let now = Instant::now();
            if l.pos >= l.next_mark || now.duration_since(l.last) >= EVERY || l.pos == l.total {
                while l.next_mark <= l.pos {
                    l.next_mark += l.total.div_ceil(10).max(1);
                }
                l.last = now;
                let done = (l.pos - l.started_at) as f64;
                let secs = now.duration_since(l.start).as_secs_f64();
                let eta = if done > 0.0 { (l.total - l.pos) as f64 * secs / done } else { 0.0 };
                let pct = 100.0 * l.pos as f64 / l.total.max(1) as f64;
                let sep = if l.message.is_empty() { "" } else { ", " };
                eprintln!(
                    "odm-train: {} {}/{} ({pct:.0}%){sep}{}, {secs:.0} s, eta {eta:.0} s",
                    l.what, l.pos, l.total, l.message
                );
            }
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
