// SPDX-License-Identifier: MIT OR Apache-2.0
//! The engine's batching service. A job is rows of one input tensor; it goes in on a [`Line`], is run on a model
//! instance's session, and comes back on the same line, in the order it went. One thread per instance serves every
//! line on it (every element that shares a `model-instance-id`): jobs already waiting when a run starts join it
//! while their rows fit one batch, so the rows of several streams share a run. What the rows are and what their
//! outputs mean is the caller's; how a session runs rows is the [`Session`]'s. [`run`] runs a job on the calling
//! thread instead, for an instance that serves one element.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// A job, where it goes back, which line it came on, and whether that line gave it up (a flush, a closed line): a
/// given-up job goes back without running.
struct Request<M: Model> {
    job: Job<Output<M>>,
    reply: mpsc::Sender<Job<Output<M>>>,
    line: u64,
    given_up: Arc<AtomicBool>,
}

impl<M: Model> Request<M> {
    fn given_up(&self) -> bool {
        self.given_up.load(Ordering::Acquire)
    }
}

/// Numbers the lines, so a run knows whether it mixed them.
static LINES: AtomicU64 = AtomicU64::new(0);

/// The thread that runs an instance's jobs, in arrival order, for every line on the instance.
pub struct Service<M: Model> {
    tx: Mutex<Option<mpsc::Sender<Request<M>>>>,
    handle: Mutex<Option<JoinHandle<()>>>,
    /// Set when the thread ends, however it ends (a panic too): lines waiting for a job stop waiting.
    ended: Arc<AtomicBool>,
}

/// Sets the flag when dropped: at the end of the service's thread, also when it unwinds.
struct EndFlag(Arc<AtomicBool>);

impl Drop for EndFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
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
        let ended = Arc::new(AtomicBool::new(false));
        let end_flag = EndFlag(ended.clone());
        let handle = std::thread::Builder::new().name(name.into()).spawn(move || {
            let _end = end_flag;
            let (mut input, mut output) = (Vec::new(), Output::<M>::default());
            let mut group: Vec<Request<M>> = Vec::new();
            let flush = |group: &mut Vec<Request<M>>, input: &mut Vec<f32>, output: &mut Output<M>| {
                // Jobs given up go back first, without running (a line gives up all its jobs at once, so each
                // line's jobs still come back in order).
                let (gone, live): (Vec<_>, Vec<_>) = group.drain(..).partition(|r| r.given_up());
                for mut r in gone {
                    M::Session::clear(&mut r.job.output);
                    r.job.rows = 0;
                    let _ = r.reply.send(r.job);
                }
                group.extend(live);
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
        Ok(Service { tx: Mutex::new(Some(tx)), handle: Mutex::new(Some(handle)), ended })
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
        // Closing the channel ends the thread once it has sent back what is queued (given-up jobs without running).
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

/// Where jobs come back on a line, in the order they went; cloned out of the line so that a user waits for a job
/// holding no lock of its own.
pub struct Returns<M: Model> {
    rx: Arc<Mutex<mpsc::Receiver<Job<Output<M>>>>>,
    ended: Arc<AtomicBool>,
}

impl<M: Model> Clone for Returns<M> {
    fn clone(&self) -> Self {
        Returns { rx: self.rx.clone(), ended: self.ended.clone() }
    }
}

impl<M: Model> Returns<M> {
    /// The next job back, waiting for it; `None` once the service's thread has ended (it will send no more), so a
    /// user never waits forever on a service that died.
    pub fn recv(&self) -> Option<Job<Output<M>>> {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(job) => return Some(job),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) if self.ended.load(Ordering::Acquire) => {
                    // Whatever it sent before it ended is already in the channel.
                    return rx.try_recv().ok();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// The oldest job sent, if it is back already.
    pub fn try_recv(&self) -> Option<Job<Output<M>>> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).try_recv().ok()
    }
}

/// One user's line to an instance's service.
pub struct Line<M: Model> {
    service: Arc<Service<M>>,
    line: u64,
    reply: mpsc::Sender<Job<Output<M>>>,
    returns: Returns<M>,
    /// Set while the user gives its jobs up (a flush), and when the line closes: those go back without running.
    given_up: Arc<AtomicBool>,
}

impl<M: Model> Line<M> {
    /// A line to the service of `model` (started now, as a thread called `name`, if it has none yet).
    pub fn open(model: &Arc<M>, batch: usize, name: &str) -> std::io::Result<Line<M>> {
        let service = Service::of(model, batch, name)?;
        let (reply, rx) = mpsc::channel();
        let line = LINES.fetch_add(1, Ordering::Relaxed);
        let returns = Returns { rx: Arc::new(Mutex::new(rx)), ended: service.ended.clone() };
        Ok(Line { service, line, reply, returns, given_up: Arc::new(AtomicBool::new(false)) })
    }

    /// Hand a job to the service; the job back when the service is gone.
    pub fn send(&self, job: Job<Output<M>>) -> Result<(), Job<Output<M>>> {
        let given_up = self.given_up.clone();
        self.service.send(Request { job, reply: self.reply.clone(), line: self.line, given_up })
    }

    /// Run a job through the service and wait for it (so that other lines' waiting rows share its run). `None` if
    /// the service is gone.
    pub fn round_trip(&self, job: Job<Output<M>>) -> Option<Job<Output<M>>> {
        self.send(job).ok()?;
        self.returns.recv()
    }

    /// The oldest job sent, if it is back already.
    pub fn try_recv(&self) -> Option<Job<Output<M>>> {
        self.returns.try_recv()
    }

    /// Where jobs come back, to wait on with no other lock held.
    pub fn returns(&self) -> Returns<M> {
        self.returns.clone()
    }

    /// Give up the jobs sent so far (a flush): those not run yet come back without running, with no rows. Call
    /// [`Line::resume`] once they are all back.
    pub fn give_up(&self) {
        self.given_up.store(true, Ordering::Release);
    }

    /// Jobs sent from now on run again.
    pub fn resume(&self) {
        self.given_up.store(false, Ordering::Release);
    }
}

impl<M: Model> Drop for Line<M> {
    /// A closed line's jobs still waiting do not run (nobody waits for them).
    fn drop(&mut self) {
        self.given_up.store(true, Ordering::Release);
    }
}

/// Jobs sent on a line and what waits for each of them, in the order sent: a frame's buffer and the rest of its work
/// wait here while its job runs, and come back with the job, oldest first.
pub struct InOrder<M: Model, W> {
    line: Line<M>,
    waiting: VecDeque<W>,
}

impl<M: Model, W> InOrder<M, W> {
    pub fn new(line: Line<M>) -> Self {
        InOrder { line, waiting: VecDeque::new() }
    }

    pub fn line(&self) -> &Line<M> {
        &self.line
    }

    /// Send a job; `waiting` waits here for it. The job back when the service is gone.
    pub fn send(&mut self, job: Job<Output<M>>, waiting: W) -> Result<(), Job<Output<M>>> {
        self.line.send(job)?;
        self.waiting.push_back(waiting);
        Ok(())
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The oldest item waiting.
    pub fn front(&self) -> Option<&W> {
        self.waiting.front()
    }

    /// Forget the items waiting (their jobs, if any come back later, are not read).
    pub fn clear(&mut self) {
        self.waiting.clear();
    }
}

/// The oldest item of the queue that `pick` finds in what `lock` gives (the user's state behind its lock) and its
/// job, once back: waiting for it (`block`) or only if it is back already. The wait holds only the line's returns,
/// not the user's lock. `None` when nothing waits (or the service is gone).
pub fn next_in_order<M, W, T, G>(
    lock: impl Fn() -> G,
    pick: impl Fn(&mut T) -> Option<&mut InOrder<M, W>>,
    block: bool,
) -> Option<(W, Job<Output<M>>)>
where
    M: Model,
    G: std::ops::DerefMut<Target = T>,
{
    let returns = {
        let mut guard = lock();
        let q = pick(&mut guard)?;
        if q.waiting.is_empty() {
            return None;
        }
        if !block {
            let job = q.line.try_recv()?;
            return q.waiting.pop_front().map(|w| (w, job));
        }
        q.line.returns()
    };
    let job = returns.recv()?;
    pick(&mut lock())?.waiting.pop_front().map(|w| (w, job))
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
            assert!(input[..rows * 2].iter().all(|v| !v.is_infinite()), "the test's way to kill the service");
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
        let first = a.returns().recv().unwrap();
        assert_eq!((first.output, first.runs.len(), first.shared_run), (vec![2.0, 2.0], 1, false));
        let second = a.returns().recv().unwrap();
        assert_eq!((second.output, second.runs.len(), second.shared_run), (vec![4.0, 4.0, 6.0, 6.0], 1, true));
        let other = b.returns().recv().unwrap();
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
        let ok = a.returns().recv().unwrap();
        assert_eq!((ok.output, ok.error.is_none()), (vec![0.0, 0.0], true));
        let failed = a.returns().recv().unwrap();
        let also = b.returns().recv().unwrap();
        for j in [failed, also] {
            assert_eq!(j.error.map(|e| e.to_string()).as_deref(), Some("inference failed: a NaN"));
        }
    }

    #[test]
    fn jobs_given_up_come_back_without_running_and_in_order() {
        let (m, asked) = model();
        let a = Line::open(&m, 4, "odm-test-batch").unwrap();
        let held = m.session.lock().unwrap();
        a.send(job(&[[1.0, 1.0]])).unwrap();
        asked.recv().unwrap();
        // Queued behind the run that waits for the session: given up before the session is free.
        a.send(job(&[[2.0, 2.0]])).unwrap();
        a.send(job(&[[3.0, 3.0]])).unwrap();
        a.give_up();
        drop(held);
        let first = a.returns().recv().unwrap();
        assert_eq!(first.output, [2.0, 2.0], "the run under way finishes");
        for _ in 0..2 {
            let j = a.returns().recv().unwrap();
            assert_eq!((j.rows, j.output.len(), j.runs.len()), (0, 0, 0), "given up: not run");
        }
        a.resume();
        assert_eq!(a.round_trip(job(&[[4.0, 4.0]])).unwrap().output, [8.0, 8.0], "jobs after resume run");
    }

    #[test]
    fn a_service_that_dies_does_not_leave_its_lines_waiting() {
        let (m, _asked) = model();
        let a = Line::open(&m, 4, "odm-test-batch").unwrap();
        a.send(job(&[[f32::INFINITY, 0.0]])).unwrap();
        // The service's thread panics on that job: the wait ends with nothing rather than never.
        assert!(a.returns().recv().is_none());
        assert!(a.round_trip(job(&[[1.0, 1.0]])).is_none());
    }
}
