// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmpublish's spool: every message from the moment it is made until the broker has it (PUBACK for QoS 1, PUBCOMP
//! for QoS 2, written to the socket for QoS 0), in order. Optionally mirrored in a journal file (`spool-location`)
//! so that what was not delivered survives the process.
//!
//! The front of the spool is handed to the MQTT client; nothing handed on the current connection is ever dropped
//! (it may already be at the broker, so dropping it would make the loss count inexact). When the spool is full, the
//! oldest message not yet handed is dropped and counted; after a disconnection everything not acknowledged is
//! handed again, in order (at-least-once: a message whose acknowledgement was lost arrives twice).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// One MQTT message. The payload is JSON text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub topic: String,
    pub payload: String,
}

#[derive(Debug)]
struct Entry {
    msg: Message,
    acked: bool,
}

/// What happened to a message given to [`Spool::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Kept,
    /// Kept; the oldest message not yet handed to the client was dropped to make room.
    DroppedOldest,
    /// Not kept: the spool is full of messages in flight.
    DroppedNew,
}

/// The journal file could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("cannot open the spool file {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot read the spool file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// The journal: one JSON line per message, appended when a message is spooled, emptied when the spool empties and
/// rewritten with what is left when it has grown well past the spool (and at stop).
#[derive(Debug)]
struct Journal {
    path: PathBuf,
    file: File,
    /// Lines in the file.
    lines: usize,
}

impl Journal {
    /// Open (or create) the journal and read the messages an earlier run left in it. Lines that are not messages (a
    /// line torn by a crash) are skipped and counted.
    fn open(path: &Path) -> Result<(Journal, Vec<Message>, usize), SpoolError> {
        let open_err = |source| SpoolError::Open { path: path.to_owned(), source };
        let file = OpenOptions::new().create(true).append(true).read(true).open(path).map_err(open_err)?;
        let mut left = Vec::new();
        let mut bad = 0;
        if file.metadata().map_err(open_err)?.is_file() {
            for line in BufReader::new(&file).split(b'\n') {
                let line = line.map_err(|source| SpoolError::Read { path: path.to_owned(), source })?;
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<Message>(&line) {
                    Ok(m) => left.push(m),
                    Err(_) => bad += 1,
                }
            }
        }
        let lines = left.len() + bad;
        Ok((Journal { path: path.to_owned(), file, lines }, left, bad))
    }

    fn append(&mut self, msg: &Message) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(msg)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.lines += 1;
        Ok(())
    }

    /// Replace the file's content with `entries` (a temporary file renamed over it, where it is a regular file).
    fn rewrite<'a>(&mut self, entries: impl Iterator<Item = &'a Message>) -> std::io::Result<()> {
        let mut text = Vec::new();
        let mut n = 0;
        for m in entries {
            serde_json::to_writer(&mut text, m)?;
            text.push(b'\n');
            n += 1;
        }
        if n == 0 || !self.file.metadata()?.is_file() {
            self.file.set_len(0)?;
            self.file.write_all(&text)?;
        } else {
            let mut tmp_name = self.path.clone().into_os_string();
            tmp_name.push(".tmp");
            let tmp = PathBuf::from(tmp_name);
            let mut f = File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            self.file = OpenOptions::new().append(true).read(true).open(&self.path)?;
        }
        self.lines = n;
        Ok(())
    }
}

/// Messages from the element to the broker, in order.
#[derive(Debug)]
pub struct Spool {
    entries: VecDeque<Entry>,
    capacity: usize,
    /// `entries[..handed]` were handed to the client on the current connection.
    handed: usize,
    /// Packet ids of `entries[..written.len()]`, which the client wrote to the network.
    written: VecDeque<u16>,
    journal: Option<Journal>,
    /// The first journal write error, for the element to say once; the journal is then given up.
    journal_error: Option<String>,
    /// Messages the broker has (or that were written, for QoS 0).
    pub sent: u64,
    /// Messages dropped: spool full, too large, or left at stop with no journal.
    pub lost: u64,
}

impl Spool {
    /// A spool of at most `capacity` messages (at least 1), in memory only.
    pub fn new(capacity: usize) -> Spool {
        Spool {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            handed: 0,
            written: VecDeque::new(),
            journal: None,
            journal_error: None,
            sent: 0,
            lost: 0,
        }
    }

    /// A spool mirrored in the journal at `path`, holding first what an earlier run left there. Returns it and the
    /// number of lines of the file that were not messages (skipped).
    pub fn with_journal(capacity: usize, path: &Path) -> Result<(Spool, usize), SpoolError> {
        let (journal, left, bad) = Journal::open(path)?;
        let mut spool = Spool::new(capacity);
        for m in left {
            spool.push_entry(m);
        }
        spool.journal = Some(journal);
        // The file now says exactly what the spool holds (an earlier run's overflow is dropped from it too).
        if bad > 0 || spool.lost > 0 {
            spool.rewrite_journal();
        }
        Ok((spool, bad))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first journal error, once.
    pub fn take_journal_error(&mut self) -> Option<String> {
        self.journal_error.take()
    }

    fn journal_failed(&mut self, e: std::io::Error) {
        if let Some(j) = self.journal.take() {
            self.journal_error = Some(format!(
                "cannot write the spool file {}: {e}; the spool goes on in memory only (messages not yet \
                 delivered are lost if the process ends)",
                j.path.display()
            ));
        }
    }

    fn rewrite_journal(&mut self) {
        if let Some(j) = self.journal.as_mut() {
            if let Err(e) = j.rewrite(self.entries.iter().map(|e| &e.msg)) {
                self.journal_failed(e);
            }
        }
    }

    fn push_entry(&mut self, msg: Message) -> Pushed {
        let pushed = if self.entries.len() < self.capacity {
            Pushed::Kept
        } else if self.handed < self.entries.len() {
            self.entries.remove(self.handed);
            Pushed::DroppedOldest
        } else {
            self.lost += 1;
            return Pushed::DroppedNew;
        };
        if pushed == Pushed::DroppedOldest {
            self.lost += 1;
        }
        self.entries.push_back(Entry { msg, acked: false });
        pushed
    }

    /// Spool a message.
    pub fn push(&mut self, msg: Message) -> Pushed {
        let appended = match self.journal.as_mut() {
            Some(j) => j.append(&msg).err(),
            None => None,
        };
        if let Some(e) = appended {
            self.journal_failed(e);
        }
        let pushed = self.push_entry(msg);
        // An overflowing spool would leave its dropped messages in the journal: rewrite it now and then.
        if self.journal.as_ref().is_some_and(|j| j.lines > 2 * self.capacity + 64) {
            self.rewrite_journal();
        }
        pushed
    }

    /// Count a message that was never spooled (too large) as lost.
    pub fn refuse(&mut self) {
        self.lost += 1;
    }

    /// Messages handed and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.handed
    }

    /// The next message to hand to the client, if any.
    pub fn next_unhanded(&self) -> Option<&Message> {
        self.entries.get(self.handed).map(|e| &e.msg)
    }

    /// The message from `next_unhanded` is now with the client.
    pub fn mark_handed(&mut self) {
        self.handed = (self.handed + 1).min(self.entries.len());
    }

    /// The client wrote the next handed message to the network as packet `pkid`; with QoS 0 that is delivery.
    pub fn on_written(&mut self, pkid: u16, qos0: bool) {
        if self.written.len() >= self.handed {
            return;
        }
        let i = self.written.len();
        self.written.push_back(pkid);
        if qos0 {
            self.entries[i].acked = true;
            self.pop_acked();
        }
    }

    /// The broker acknowledged packet `pkid` (PUBACK, or PUBCOMP for QoS 2).
    pub fn on_ack(&mut self, pkid: u16) {
        let hit = self.written.iter().zip(self.entries.iter()).position(|(&p, e)| p == pkid && !e.acked);
        if let Some(i) = hit {
            self.entries[i].acked = true;
            self.pop_acked();
        }
    }

    fn pop_acked(&mut self) {
        let before = self.entries.len();
        while self.entries.front().is_some_and(|e| e.acked) {
            self.entries.pop_front();
            self.written.pop_front();
            self.handed -= 1;
            self.sent += 1;
        }
        if self.entries.is_empty() && before > 0 {
            if let Some(j) = self.journal.as_mut() {
                if let Err(e) = j.rewrite(std::iter::empty()) {
                    self.journal_failed(e);
                }
            }
        }
    }

    /// The connection ended: what was acknowledged is delivered, everything else is handed again from the front.
    pub fn reset(&mut self) {
        let before = self.entries.len();
        self.entries.retain(|e| !e.acked);
        self.sent += (before - self.entries.len()) as u64;
        self.handed = 0;
        self.written.clear();
    }

    /// At stop: what is still here stays in the journal for the next run (returns how many), or without one is lost
    /// (counted).
    pub fn close(&mut self) -> usize {
        self.reset();
        let left = self.entries.len();
        if self.journal.is_some() {
            self.rewrite_journal();
            if self.journal.is_some() {
                return left;
            }
        }
        self.lost += left as u64;
        self.entries.clear();
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: usize) -> Message {
        Message { topic: "t".into(), payload: format!("{{\"seq\":{i}}}") }
    }

    fn hand_all(s: &mut Spool) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(m) = s.next_unhanded() {
            out.push(m.payload.clone());
            s.mark_handed();
        }
        out
    }

    #[test]
    fn acknowledged_messages_leave_in_order() {
        let mut s = Spool::new(10);
        for i in 0..3 {
            assert_eq!(s.push(msg(i)), Pushed::Kept);
        }
        assert_eq!(hand_all(&mut s).len(), 3);
        for p in [1, 2, 3] {
            s.on_written(p, false);
        }
        // Out of order: the second stays until the first is acknowledged.
        s.on_ack(2);
        assert_eq!((s.len(), s.sent), (3, 0));
        s.on_ack(1);
        assert_eq!((s.len(), s.sent), (1, 2));
        s.on_ack(3);
        assert!(s.is_empty());
        assert_eq!((s.sent, s.lost), (3, 0));
    }

    #[test]
    fn a_full_spool_drops_the_oldest_unhanded_and_counts_it() {
        let mut s = Spool::new(3);
        for i in 0..3 {
            s.push(msg(i));
        }
        s.mark_handed(); // 0 is in flight: never dropped
        assert_eq!(s.push(msg(3)), Pushed::DroppedOldest);
        assert_eq!(s.push(msg(4)), Pushed::DroppedOldest);
        assert_eq!(s.lost, 2);
        assert_eq!(hand_all(&mut s), [r#"{"seq":3}"#, r#"{"seq":4}"#]);
        // Everything in flight: the new one is dropped.
        assert_eq!(s.push(msg(5)), Pushed::DroppedNew);
        assert_eq!(s.lost, 3);
    }

    #[test]
    fn a_disconnection_hands_everything_unacknowledged_again_in_order() {
        let mut s = Spool::new(10);
        for i in 0..4 {
            s.push(msg(i));
        }
        hand_all(&mut s);
        s.on_written(1, false);
        s.on_written(2, false);
        s.on_ack(2); // acknowledged out of order, then the connection drops
        s.reset();
        assert_eq!((s.sent, s.len()), (1, 3));
        assert_eq!(hand_all(&mut s), [r#"{"seq":0}"#, r#"{"seq":2}"#, r#"{"seq":3}"#]);
    }

    #[test]
    fn qos0_is_delivered_when_written() {
        let mut s = Spool::new(4);
        s.push(msg(0));
        hand_all(&mut s);
        s.on_written(0, true);
        assert!(s.is_empty());
        assert_eq!(s.sent, 1);
        // A write event with nothing handed is ignored.
        s.on_written(0, true);
        assert_eq!(s.sent, 1);
    }

    #[test]
    fn the_journal_keeps_what_was_not_delivered_for_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.jsonl");
        let (mut s, bad) = Spool::with_journal(10, &path).unwrap();
        assert_eq!(bad, 0);
        for i in 0..3 {
            s.push(msg(i));
        }
        hand_all(&mut s);
        s.on_written(1, false);
        s.on_ack(1);
        assert_eq!(s.close(), 2);
        assert_eq!(s.lost, 0);
        // A torn line (a crash mid-write) is skipped and said.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"topic\":\"t\",\"payl");
        std::fs::write(&path, text).unwrap();
        let (mut s, bad) = Spool::with_journal(10, &path).unwrap();
        assert_eq!(bad, 1);
        assert_eq!(hand_all(&mut s), [r#"{"seq":1}"#, r#"{"seq":2}"#]);
        s.on_written(1, false);
        s.on_written(2, false);
        s.on_ack(1);
        s.on_ack(2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }

    #[test]
    fn an_unwritable_journal_is_refused_at_open_or_said_once_and_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let err = Spool::with_journal(10, &dir.path().join("no/such/folder/spool")).unwrap_err();
        assert!(err.to_string().contains("no/such/folder/spool"), "{err}");
        let (mut s, _) = Spool::with_journal(10, Path::new("/dev/full")).unwrap();
        s.push(msg(0));
        let said = s.take_journal_error().expect("said");
        assert!(said.contains("/dev/full"), "{said}");
        s.push(msg(1));
        assert!(s.take_journal_error().is_none());
        assert_eq!(s.len(), 2);
        assert_eq!(s.close(), 0);
        assert_eq!(s.lost, 2);
    }
}
