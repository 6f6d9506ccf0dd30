//! The ring of rendered datagrams between the reader thread and the sender thread.
//!
//! The reader renders up to `ahead` datagrams past the sender's position; slots behind the
//! sender are kept until overwritten, so the last `capacity - ahead` datagrams (about one
//! second) stay available and a small rewind (the failover secondary going back to a
//! boundary) costs no file read. A fetch of an index that is neither held nor coming next
//! repositions the reader there.
//!
//! Slots hold shared, immutable datagrams (`Arc<Vec<u8>>`): a store moves the reader's
//! buffers in and a fetch hands out a reference, so no datagram is copied under the lock
//! and the sender passes the slot's bytes straight to the socket. A buffer whose slot is
//! overwritten goes back to the reader for reuse.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::priority::QuietFill;

const EMPTY: u64 = u64::MAX;

/// Why a fetch returned no datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The ring was stopped.
    Stopped,
    /// The reader failed (message of its error).
    Reader(String),
}

struct State {
    data: Vec<Option<Arc<Vec<u8>>>>,
    index: Vec<u64>,
    /// Next index the sender needs.
    want: u64,
    /// Next index the reader renders.
    next_render: u64,
    /// Bumped on every reposition: a batch rendered under an older generation is dropped.
    generation: u64,
    ahead: u64,
    /// Datagrams in the session (`u64::MAX` = endless).
    end: u64,
    stop: bool,
    error: Option<String>,
    underruns: u64,
    /// The reader / sender is blocked on its condition variable (notify only then: a
    /// notify is a futex system call even without a waiter).
    reader_waiting: bool,
    sender_waiting: bool,
}

impl State {
    fn cap(&self) -> u64 {
        self.index.len() as u64
    }
    fn slot(&self, i: u64) -> usize {
        (i % self.cap()) as usize
    }
    fn holds(&self, i: u64) -> bool {
        self.index[self.slot(i)] == i
    }
}

/// A bounded ring of rendered datagrams shared by one reader and one sender.
pub struct Ring {
    state: Mutex<State>,
    reader_cv: Condvar,
    sender_cv: Condvar,
    batch: u64,
    /// The reader's quiet first fill: ended (the reader restored) by the first fetch,
    /// before the lock is taken, so the sender never waits on a reader at idle priority.
    quiet: Option<Arc<QuietFill>>,
}

/// A datagram handed out by [`Ring::fetch`].
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its wire bytes.
    pub bytes: Arc<Vec<u8>>,
    /// Whether the fetch had to wait for the reader.
    pub waited: bool,
}

/// A batch of work for the reader: render `start .. start + count` under `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// First index to render.
    pub start: u64,
    /// How many.
    pub count: u64,
    /// Generation to hand back to [`Ring::store`].
    pub generation: u64,
}

impl Ring {
    /// A ring of `capacity` slots, the reader staying up to `ahead` datagrams ahead,
    /// starting at `start` and never rendering `end` or later.
    pub fn new(capacity: u64, ahead: u64, start: u64, end: Option<u64>) -> Ring {
        let capacity = capacity.max(2);
        let ahead = ahead.clamp(1, capacity - 1);
        Ring {
            state: Mutex::new(State {
                data: vec![None; capacity as usize],
                index: vec![EMPTY; capacity as usize],
                want: start,
                next_render: start,
                generation: 0,
                ahead,
                end: end.unwrap_or(u64::MAX),
                stop: false,
                error: None,
                underruns: 0,
                reader_waiting: false,
                sender_waiting: false,
            }),
            reader_cv: Condvar::new(),
            sender_cv: Condvar::new(),
            batch: (ahead / 2).clamp(1, 256),
            quiet: None,
        }
    }

    /// The same ring with the reader's quiet first fill attached (see [`Ring::fetch`]).
    pub fn with_quiet(mut self, quiet: Option<Arc<QuietFill>>) -> Ring {
        self.quiet = quiet;
        self
    }

    /// The reader's quiet first fill, if any.
    pub fn quiet(&self) -> Option<&Arc<QuietFill>> {
        self.quiet.as_ref()
    }

    /// Whether the reader has nothing to render until the sender moves on (the ring is
    /// full, or the session's end is rendered).
    pub fn filled(&self) -> bool {
        let st = self.lock();
        let limit = st.want.saturating_add(st.ahead).min(st.end);
        st.next_render >= limit || limit - st.next_render < self.batch
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means the other thread panicked; the data is plain bytes and
        // indices, still consistent enough to stop cleanly.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Datagram `i` (shared with the ring: nothing is copied), waiting for the reader if
    /// needed (counted as an underrun). Repositions the reader when `i` is neither held nor
    /// next in line.
    pub fn fetch(&self, i: u64) -> Result<Fetched, FetchError> {
        if let Some(q) = &self.quiet {
            q.first_fetch();
        }
        let mut st = self.lock();
        let mut waited = false;
        loop {
            if st.holds(i) {
                let s = st.slot(i);
                let bytes = st.data[s].clone().unwrap_or_default();
                st.want = i + 1;
                if st.reader_waiting && st.next_render + self.batch <= st.want + st.ahead {
                    st.reader_waiting = false;
                    self.reader_cv.notify_one();
                }
                return Ok(Fetched { bytes, waited });
            }
            if st.stop {
                return Err(FetchError::Stopped);
            }
            if let Some(e) = &st.error {
                return Err(FetchError::Reader(e.clone()));
            }
            if i >= st.end {
                return Err(FetchError::Reader(format!(
                    "datagram {i} is past the end of the session ({} datagrams)",
                    st.end
                )));
            }
            let coming = i >= st.next_render && i < st.next_render + st.ahead;
            if !coming {
                st.next_render = i;
                st.generation += 1;
            }
            st.want = i;
            st.reader_waiting = false;
            self.reader_cv.notify_one();
            if !waited {
                st.underruns += 1;
                waited = true;
            }
            st.sender_waiting = true;
            st = self
                .sender_cv
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            st.sender_waiting = false;
        }
    }

    /// Reader side: waits until there is a batch to render; `None` once stopped.
    pub fn work(&self) -> Option<Work> {
        loop {
            if let Some(w) = self.work_within(None)? {
                return Some(w);
            }
        }
    }

    /// Reader side: like [`Ring::work`] but waits at most `max_wait` (`None`: no limit);
    /// `Some(None)` when that passed with nothing to do (a supervised reader checks in).
    pub fn work_within(&self, max_wait: Option<Duration>) -> Option<Option<Work>> {
        let mut st = self.lock();
        let deadline = max_wait.map(|d| std::time::Instant::now() + d);
        loop {
            if st.stop {
                return None;
            }
            let limit = st.want.saturating_add(st.ahead).min(st.end);
            if st.next_render < limit {
                let room = limit - st.next_render;
                // Render at once when the sender is waiting or the room is a full batch.
                if room >= self.batch || st.next_render <= st.want {
                    return Some(Some(Work {
                        start: st.next_render,
                        count: room.min(self.batch),
                        generation: st.generation,
                    }));
                }
            }
            st.reader_waiting = true;
            st = match deadline {
                None => self.reader_cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        st.reader_waiting = false;
                        return Some(None);
                    }
                    self.reader_cv
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            st.reader_waiting = false;
        }
    }

    /// Whether [`Ring::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.lock().stop
    }

    /// Whether the ring holds datagram `i` and its bytes equal `bytes`.
    pub fn holds_equal(&self, i: u64, bytes: &[u8]) -> bool {
        let st = self.lock();
        st.holds(i)
            && st.data[st.slot(i)]
                .as_deref()
                .is_some_and(|d| d[..] == *bytes)
    }

    /// Every index still held whose bytes equal `bytes`, ascending, into `out` (cleared).
    pub fn matches(&self, bytes: &[u8], out: &mut Vec<u64>) {
        out.clear();
        let st = self.lock();
        for (s, d) in st.data.iter().enumerate() {
            if st.index[s] != EMPTY && d.as_deref().is_some_and(|d| d[..] == *bytes) {
                out.push(st.index[s]);
            }
        }
        out.sort_unstable();
    }

    /// Reader side: moves rendered datagrams `work.start ..` into the ring (taking them out
    /// of `datagrams`) and hands back in `datagrams` the buffers of overwritten slots that
    /// nobody holds any more, for reuse. Dropped when the ring was repositioned meanwhile.
    pub fn store(&self, work: Work, datagrams: &mut Vec<Vec<u8>>) {
        let batch = std::mem::take(datagrams);
        let n = batch.len() as u64;
        let mut st = self.lock();
        if st.generation != work.generation || st.next_render != work.start {
            drop(st);
            *datagrams = batch;
            return;
        }
        for (k, d) in batch.into_iter().enumerate() {
            let i = work.start + k as u64;
            let s = st.slot(i);
            st.index[s] = i;
            if let Some(old) = st.data[s].replace(Arc::new(d)) {
                if let Ok(v) = Arc::try_unwrap(old) {
                    datagrams.push(v);
                }
            }
        }
        st.next_render = work.start + n;
        if st.sender_waiting {
            st.sender_waiting = false;
            self.sender_cv.notify_one();
        }
    }

    /// Reader side: reports a fatal error to the sender.
    pub fn fail(&self, message: String) {
        let mut st = self.lock();
        st.error = Some(message);
        self.sender_cv.notify_all();
    }

    /// Stops both sides.
    pub fn stop(&self) {
        let mut st = self.lock();
        st.stop = true;
        self.reader_cv.notify_all();
        self.sender_cv.notify_all();
    }

    /// Fetches that had to wait for the reader.
    pub fn underruns(&self) -> u64 {
        self.lock().underruns
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn datagram(i: u64) -> Vec<u8> {
        i.to_be_bytes().repeat(1 + (i % 3) as usize)
    }

    fn spawn_reader(ring: Arc<Ring>) -> std::thread::JoinHandle<u64> {
        std::thread::spawn(move || {
            let mut rendered = 0;
            while let Some(w) = ring.work() {
                let mut v: Vec<Vec<u8>> = (w.start..w.start + w.count).map(datagram).collect();
                rendered += w.count;
                ring.store(w, &mut v);
            }
            rendered
        })
    }

    #[test]
    fn in_order_rewind_and_jump() {
        let ring = Arc::new(Ring::new(64, 16, 10, None));
        let reader = spawn_reader(ring.clone());
        for i in 10..200 {
            let f = ring.fetch(i).unwrap();
            assert_eq!(*f.bytes, datagram(i));
        }
        // A rewind inside the history: served from the ring.
        for i in 170..180 {
            let f = ring.fetch(i).unwrap();
            assert_eq!(*f.bytes, datagram(i));
        }
        // A rewind past the history and a jump ahead reposition the reader.
        for i in [20u64, 21, 22, 5000, 5001, 150] {
            let f = ring.fetch(i).unwrap();
            assert_eq!(*f.bytes, datagram(i));
        }
        ring.stop();
        assert!(matches!(ring.fetch(7), Err(FetchError::Stopped)));
        let rendered = reader.join().unwrap();
        // Bounded read-ahead: nowhere near rendering everything up to 5000.
        assert!(rendered < 600, "{rendered}");
    }

    #[test]
    fn reader_stops_at_the_end() {
        let ring = Arc::new(Ring::new(64, 16, 0, Some(20)));
        let reader = spawn_reader(ring.clone());
        for i in 0..20 {
            assert_eq!(*ring.fetch(i).unwrap().bytes, datagram(i));
        }
        assert!(matches!(ring.fetch(20), Err(FetchError::Reader(_))));
        ring.stop();
        assert_eq!(reader.join().unwrap(), 20);
    }

    #[test]
    fn overwritten_buffers_come_back_unless_still_held() {
        let ring = Ring::new(4, 2, 0, None);
        let mut spare = Vec::new();
        let store = |start: u64, spare: &mut Vec<Vec<u8>>| {
            let w = ring.work_within(Some(Duration::ZERO)).unwrap().unwrap();
            assert_eq!((w.start, w.count), (start, 1));
            let mut b = vec![datagram(start)];
            ring.store(w, &mut b);
            spare.append(&mut b);
        };
        store(0, &mut spare);
        let held = ring.fetch(0).unwrap().bytes;
        for i in 1..4 {
            store(i, &mut spare);
            assert_eq!(*ring.fetch(i).unwrap().bytes, datagram(i));
        }
        assert!(spare.is_empty());
        // Slot 0 is overwritten while the sender still holds datagram 0: not handed back.
        store(4, &mut spare);
        assert!(spare.is_empty());
        assert_eq!(*held, datagram(0));
        ring.fetch(4).unwrap();
        // Slot 1 is free: its buffer comes back.
        store(5, &mut spare);
        assert_eq!(spare, vec![datagram(1)]);
        assert!(ring.holds_equal(5, &datagram(5)));
        assert!(!ring.holds_equal(1, &datagram(1)));
        let mut m = Vec::new();
        ring.matches(&datagram(5), &mut m);
        assert_eq!(m, vec![5]);
        ring.matches(&datagram(1), &mut m);
        assert!(m.is_empty());
    }

    #[test]
    fn reader_error_reaches_the_sender() {
        let ring = Ring::new(8, 4, 0, Some(100));
        ring.fail("disk on fire".into());
        assert!(matches!(
            ring.fetch(0),
            Err(FetchError::Reader(e)) if e == "disk on fire"
        ));
    }
}
