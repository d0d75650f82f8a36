// SPDX-License-Identifier: MIT OR Apache-2.0
//! The engine's batching service. A job is rows of one input tensor; it goes in on a [`Line`], is run on a model
//! instance's session, and comes back on the same line, in the order it went. One thread per instance serves every
//! line on it (every element that shares a `model-instance-id`): jobs already waiting when a run starts join it
//! while their rows fit one batch, so the rows of several streams share a run. What the rows are and what their
//! outputs mean is the caller's; how a session runs rows is the [`Session`]'s. [`run`] runs a job on the calling
//! thread instead, for an instance that serves one element.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::EngineError;

/// A session the service can run: rows of one input tensor in, their outputs out.
pub trait Session: Send + 'static {
    /// What runs give back for a job's rows, appended run after run in row order.
    type Output: Default + Send + 'static;
    /// Floats in one input row.
    fn row_len(&self) -> usize;
    /// Run `rows` rows laid out one after another in `input`; append their outputs to `out`.
    fn run(&mut self, input: &[f32], rows: usize, out: &mut Self::Output) -> Result<(), EngineError>;
    /// Empty a job's output before its rows run.
    fn clear(out: &mut Self::Output);
    /// Append `rows` rows, from row `from`, of one run's output (the rows of several jobs) to one job's output.
    fn split(&self, run: &Self::Output, from: usize, rows: usize, into: &mut Self::Output);
}

/// A model instance the service runs: its session behind a lock, and where its service thread is kept, so that every
/// user of the instance finds the same one.
pub trait Model: Send + Sync + Sized + 'static {
    type Session: Session;
    fn lock(&self) -> MutexGuard<'_, Self::Session>;
    fn service(&self) -> &Mutex<Weak<Service<Self>>>;
}

/// What a job of a model's session gives back.
pub type Output<M> = <<M as Model>::Session as Session>::Output;

/// Rows to run and what their runs gave back. Reused from job to job, so steady-state jobs allocate nothing.
#[derive(Default, Debug)]
pub struct Job<O> {
    /// `[rows, row_len]` floats (it may be longer: only the first `rows` rows are read).
    pub input: Vec<f32>,
    pub rows: usize,
    pub output: O,
    /// The time of each run that carried the rows (a run shared by several jobs is counted with the first of them).
    pub runs: Vec<Duration>,
    /// The first failure (the rows after it did not run).
    pub error: Option<EngineError>,
    /// The rows shared a run with another line's rows.
    pub shared_run: bool,
}

impl<O> Job<O> {
    /// The slot of the next row, grown to fit; it counts once [`Job::push_row`] says it is written.
    pub fn next_row(&mut self, len: usize) -> &mut [f32] {
        let row = self.rows;
        if self.input.len() < (row + 1) * len {
            self.input.resize((row + 1) * len, 0.0);
        }
        &mut self.input[row * len..(row + 1) * len]
    }

    pub fn push_row(&mut self) {
        self.rows += 1;
    }

    /// Empty it for new rows (the input's room is kept).
    pub fn clear(&mut self) {
        self.rows = 0;
        self.runs.clear();
        self.error = None;
        self.shared_run = false;
    }
}

/// Run a job's rows on the calling thread, `batch` rows per run, holding the session for all of them.
pub fn run<M: Model>(model: &M, job: &mut Job<Output<M>>, batch: usize) {
    if job.rows == 0 {
        return;
    }
    let mut session = model.lock();
    let (len, n) = (session.row_len(), job.rows);
    M::Session::clear(&mut job.output);
    for start in (0..n).step_by(batch.max(1)) {
        let k = batch.max(1).min(n - start);
        let t0 = Instant::now();
        let r = session.run(&job.input[start * len..(start + k) * len], k, &mut job.output);
        job.runs.push(t0.elapsed());
        if let Err(e) = r {
            job.error = Some(e);
            return;
        }
    }
}

/// A job, where it goes back, and which line it came on.
struct Request<M: Model> {
    job: Job<Output<M>>,
    reply: mpsc::Sender<Job<Output<M>>>,
    line: u64,
}

/// Numbers the lines, so a run knows whether it mixed them.
static LINES: AtomicU64 = AtomicU64::new(0);

/// The thread that runs an instance's jobs, in arrival order, for every line on the instance.
pub struct Service<M: Model> {
    tx: Mutex<Option<mpsc::Sender<Request<M>>>>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl<M: Model> Service<M> {
    /// The service of `model`: the one its first user started, or a new one (a thread called `name`) that runs at
    /// most `batch` rows together.
    fn of(model: &Arc<M>, batch: usize, name: &str) -> std::io::Result<Arc<Service<M>>> {
        let mut slot = model.service().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = slot.upgrade() {
            return Ok(s);
        }
        let s = Arc::new(Service::spawn(model, batch, name)?);
        *slot = Arc::downgrade(&s);
        Ok(s)
    }

    fn spawn(model: &Arc<M>, batch: usize, name: &str) -> std::io::Result<Service<M>> {
        // The thread does not keep the instance alive (its users hold it).
        let model = Arc::downgrade(model);
        let (tx, rx) = mpsc::channel::<Request<M>>();
        let handle = std::thread::Builder::new().name(name.into()).spawn(move || {
            let (mut input, mut output) = (Vec::new(), Output::<M>::default());
            let mut group: Vec<Request<M>> = Vec::new();
            let flush = |group: &mut Vec<Request<M>>, input: &mut Vec<f32>, output: &mut Output<M>| {
                // Users send jobs while they hold the instance, so it is alive here.
                if let Some(model) = model.upgrade() {
                    run_group(&*model, batch, group, input, output);
                }
                for r in group.drain(..) {
                    // A user that went away no longer waits for its job.
                    let _ = r.reply.send(r.job);
                }
            };
            while let Ok(first) = rx.recv() {
                let mut rows = first.job.rows;
                group.push(first);
                // Jobs already waiting (of this line or of others) join this run while they fit.
                while rows < batch {
                    match rx.try_recv() {
                        Ok(r) if rows + r.job.rows <= batch => {
                            rows += r.job.rows;
                            group.push(r);
                        }
                        Ok(r) => {
                            flush(&mut group, &mut input, &mut output);
                            rows = r.job.rows;
                            group.push(r);
                        }
                        Err(_) => break,
                    }
                }
                flush(&mut group, &mut input, &mut output);
            }
        })?;
        Ok(Service { tx: Mutex::new(Some(tx)), handle: Mutex::new(Some(handle)) })
    }

    /// Queue a request; its job back when the thread is gone.
    fn send(&self, r: Request<M>) -> Result<(), Job<Output<M>>> {
        match self.tx.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(tx) => tx.send(r).map_err(|e| e.0.job),
            None => Err(r.job),
        }
    }
}

impl<M: Model> Drop for Service<M> {
    fn drop(&mut self) {
        // Closing the channel ends the thread once its current run is done.
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// Jobs that came back on a line, in the order they went.
pub type Returns<M> = Arc<Mutex<mpsc::Receiver<Job<Output<M>>>>>;

/// One user's line to an instance's service.
pub struct Line<M: Model> {
    service: Arc<Service<M>>,
    line: u64,
    reply: mpsc::Sender<Job<Output<M>>>,
    /// Behind its own lock, so that a user waits for a job holding no lock of its own.
    returns: Returns<M>,
}

impl<M: Model> Line<M> {
    /// A line to the service of `model` (started now, as a thread called `name`, if it has none yet).
    pub fn open(model: &Arc<M>, batch: usize, name: &str) -> std::io::Result<Line<M>> {
        let service = Service::of(model, batch, name)?;
        let (reply, rx) = mpsc::channel();
        let line = LINES.fetch_add(1, Ordering::Relaxed);
        Ok(Line { service, line, reply, returns: Arc::new(Mutex::new(rx)) })
    }

    /// Hand a job to the service; the job back when the service is gone.
    pub fn send(&self, job: Job<Output<M>>) -> Result<(), Job<Output<M>>> {
        self.service.send(Request { job, reply: self.reply.clone(), line: self.line })
    }

    /// Run a job through the service and wait for it (so that other lines' waiting rows share its run). `None` if
    /// the service is gone.
    pub fn round_trip(&self, job: Job<Output<M>>) -> Option<Job<Output<M>>> {
        self.send(job).ok()?;
        self.returns.lock().unwrap_or_else(|e| e.into_inner()).recv().ok()
    }

    /// The oldest job sent, if it is back already.
    pub fn try_recv(&self) -> Option<Job<Output<M>>> {
        self.returns.lock().unwrap_or_else(|e| e.into_inner()).try_recv().ok()
    }

    /// Where jobs come back, to wait on with no other lock held.
    pub fn returns(&self) -> Returns<M> {
        self.returns.clone()
    }
}

/// Run a group of jobs: one job as it is; several (their rows fit one batch) in one run over their rows copied
/// together.
fn run_group<M: Model>(
    model: &M,
    batch: usize,
    group: &mut [Request<M>],
    input: &mut Vec<f32>,
    output: &mut Output<M>,
) {
    if let [one] = group {
        run(model, &mut one.job, batch);
        return;
    }
    let mut session = model.lock();
    let len = session.row_len();
    input.clear();
    for r in group.iter() {
        input.extend_from_slice(&r.job.input[..r.job.rows * len]);
    }
    let n = input.len() / len.max(1);
    if n == 0 {
        return;
    }
    M::Session::clear(output);
    let t0 = Instant::now();
    let run = session.run(input, n, output);
    let took = t0.elapsed();
    // Rows of more than one line in this run: each job of it says so.
    let first_line = group[0].line;
    let mixed = group.iter().any(|r| r.line != first_line && r.job.rows > 0);
    let mut at = 0;
    for (i, r) in group.iter_mut().enumerate() {
        let job = &mut r.job;
        let k = job.rows;
        M::Session::clear(&mut job.output);
        job.shared_run = mixed && k > 0;
        match &run {
            Ok(()) => session.split(output, at, k, &mut job.output),
            // The same failure for every job of the run (EngineError is not Clone: its text travels).
            Err(EngineError::Run(m)) => job.error = Some(EngineError::Run(m.clone())),
            Err(e) => job.error = Some(EngineError::Run(e.to_string())),
        }
        // The run is counted once, with the first job of the group.
        if i == 0 {
            job.runs.push(took);
        }
        at += k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session that doubles its rows (two floats each) and fails on a NaN.
    struct Double;

    impl Session for Double {
        type Output = Vec<f32>;

        fn row_len(&self) -> usize {
            2
        }

        fn run(&mut self, input: &[f32], rows: usize, out: &mut Vec<f32>) -> Result<(), EngineError> {
            if input[..rows * 2].iter().any(|v| v.is_nan()) {
                return Err(EngineError::Run("a NaN".into()));
            }
            out.extend(input[..rows * 2].iter().map(|v| v * 2.0));
            Ok(())
        }

        fn clear(out: &mut Vec<f32>) {
            out.clear();
        }

        fn split(&self, run: &Vec<f32>, from: usize, rows: usize, into: &mut Vec<f32>) {
            into.extend_from_slice(&run[from * 2..(from + rows) * 2]);
        }
    }

    /// An instance of it that says when the service's thread asks for the session.
    struct Doubler {
        session: Mutex<Double>,
        service: Mutex<Weak<Service<Doubler>>>,
        asked: Mutex<mpsc::Sender<()>>,
    }

    impl Model for Doubler {
        type Session = Double;

        fn lock(&self) -> MutexGuard<'_, Double> {
            let _ = self.asked.lock().unwrap().send(());
            self.session.lock().unwrap()
        }

        fn service(&self) -> &Mutex<Weak<Service<Doubler>>> {
            &self.service
        }
    }

    fn model() -> (Arc<Doubler>, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        let m = Doubler { session: Mutex::new(Double), service: Mutex::new(Weak::new()), asked: Mutex::new(tx) };
        (Arc::new(m), rx)
    }

    fn job(rows: &[[f32; 2]]) -> Job<Vec<f32>> {
        let mut j = Job::default();
        for r in rows {
            j.next_row(2).copy_from_slice(r);
            j.push_row();
        }
        j
    }

    #[test]
    fn a_job_runs_in_batches_on_the_calling_thread() {
        let (m, _asked) = model();
        let mut j = job(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
        run(&*m, &mut j, 2);
        assert_eq!(j.output, [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
        assert_eq!(j.runs.len(), 2);
        assert!(j.error.is_none() && !j.shared_run);
    }

    #[test]
    fn jobs_waiting_together_share_a_run_and_come_back_in_order_on_their_lines() {
        let (m, asked) = model();
        let (a, b) = (Line::open(&m, 4, "odm-test-batch").unwrap(), Line::open(&m, 4, "odm-test-batch").unwrap());
        // The session is held here while the first job waits for it, so the next two queue up behind it.
        let held = m.session.lock().unwrap();
        a.send(job(&[[1.0, 1.0]])).unwrap();
        asked.recv().unwrap();
        a.send(job(&[[2.0, 2.0], [3.0, 3.0]])).unwrap();
        b.send(job(&[[4.0, 4.0]])).unwrap();
        assert!(a.try_recv().is_none(), "nothing back while the session is held here");
        drop(held);
        let first = a.returns().lock().unwrap().recv().unwrap();
        assert_eq!((first.output, first.runs.len(), first.shared_run), (vec![2.0, 2.0], 1, false));
        let second = a.returns().lock().unwrap().recv().unwrap();
        assert_eq!((second.output, second.runs.len(), second.shared_run), (vec![4.0, 4.0, 6.0, 6.0], 1, true));
        let other = b.returns().lock().unwrap().recv().unwrap();
        // One run for both, counted with the first job of it.
        assert_eq!((other.output, other.runs.len(), other.shared_run), (vec![8.0, 8.0], 0, true));
        // A failed run fails every job of it, with the run's text.
        while asked.try_recv().is_ok() {}
        let held = m.session.lock().unwrap();
        a.send(job(&[[0.0, 0.0]])).unwrap();
        asked.recv().unwrap();
        a.send(job(&[[f32::NAN, 0.0]])).unwrap();
        b.send(job(&[[1.0, 0.0]])).unwrap();
        drop(held);
        let ok = a.returns().lock().unwrap().recv().unwrap();
        assert_eq!((ok.output, ok.error.is_none()), (vec![0.0, 0.0], true));
        let failed = a.returns().lock().unwrap().recv().unwrap();
        let also = b.returns().lock().unwrap().recv().unwrap();
        for j in [failed, also] {
            assert_eq!(j.error.map(|e| e.to_string()).as_deref(), Some("inference failed: a NaN"));
        }
    }
}
