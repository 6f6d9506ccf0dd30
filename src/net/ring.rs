//! The ring of rendered datagrams between the reader thread and the sender thread.
//!
//! The reader renders up to `ahead` datagrams past the sender's position; slots behind the
//! sender are kept until overwritten, so the last `capacity - ahead` datagrams (about one
//! second) stay available and a small rewind (the failover secondary going back to a
//! boundary) costs no file read. A fetch of an index that is neither held nor coming next
//! repositions the reader there.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

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
    slot_len: usize,
    data: Vec<u8>,
    index: Vec<u64>,
    len: Vec<usize>,
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
    /// A ring of `capacity` slots of `slot_len` bytes, the reader staying up to `ahead`
    /// datagrams ahead, starting at `start` and never rendering `end` or later.
    pub fn new(capacity: u64, ahead: u64, slot_len: usize, start: u64, end: Option<u64>) -> Ring {
        let capacity = capacity.max(2);
        let ahead = ahead.clamp(1, capacity - 1);
        Ring {
            state: Mutex::new(State {
                slot_len,
                data: vec![0; capacity as usize * slot_len],
                index: vec![EMPTY; capacity as usize],
                len: vec![0; capacity as usize],
                want: start,
                next_render: start,
                generation: 0,
                ahead,
                end: end.unwrap_or(u64::MAX),
                stop: false,
                error: None,
                underruns: 0,
            }),
            reader_cv: Condvar::new(),
            sender_cv: Condvar::new(),
            batch: (ahead / 4).clamp(1, 32),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means the other thread panicked; the data is plain bytes and
        // indices, still consistent enough to stop cleanly.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies datagram `i` into `out`, waiting for the reader if needed (counted as an
    /// underrun). Repositions the reader when `i` is neither held nor next in line.
    pub fn fetch(&self, i: u64, out: &mut Vec<u8>) -> Result<(), FetchError> {
        let mut st = self.lock();
        let mut waited = false;
        loop {
            if st.holds(i) {
                let s = st.slot(i);
                let at = s * st.slot_len;
                out.clear();
                out.extend_from_slice(&st.data[at..at + st.len[s]]);
                st.want = i + 1;
                if st.next_render + self.batch <= st.want + st.ahead {
                    self.reader_cv.notify_one();
                }
                return Ok(());
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
            self.reader_cv.notify_one();
            if !waited {
                st.underruns += 1;
                waited = true;
            }
            st = self
                .sender_cv
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
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
            st = match deadline {
                None => self.reader_cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Some(None);
                    }
                    self.reader_cv
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// Whether [`Ring::stop`] was called.
    pub fn stopped(&self) -> bool {
        self.lock().stop
    }

    /// The index of a datagram still held whose bytes equal `bytes`, the one nearest to
    /// `hint` (e.g. the index expected now), searching outwards from it.
    pub fn find(&self, bytes: &[u8], hint: u64) -> Option<u64> {
        let st = self.lock();
        let cap = st.cap();
        for d in 0..cap {
            for i in [hint.checked_add(d), hint.checked_sub(d).filter(|_| d > 0)]
                .into_iter()
                .flatten()
            {
                if st.holds(i) {
                    let s = st.slot(i);
                    let at = s * st.slot_len;
                    if st.len[s] == bytes.len() && st.data[at..at + st.len[s]] == *bytes {
                        return Some(i);
                    }
                }
            }
        }
        None
    }

    /// Reader side: stores rendered datagrams `work.start ..` (each `slot_len` or shorter).
    /// Dropped when the ring was repositioned meanwhile.
    pub fn store(&self, work: Work, datagrams: &[Vec<u8>]) {
        let mut st = self.lock();
        if st.generation != work.generation || st.next_render != work.start {
            return;
        }
        for (n, d) in datagrams.iter().enumerate() {
            let i = work.start + n as u64;
            let s = st.slot(i);
            let at = s * st.slot_len;
            let len = d.len().min(st.slot_len);
            st.data[at..at + len].copy_from_slice(&d[..len]);
            st.len[s] = len;
            st.index[s] = i;
        }
        st.next_render = work.start + datagrams.len() as u64;
        self.sender_cv.notify_one();
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
                let v: Vec<Vec<u8>> = (w.start..w.start + w.count).map(datagram).collect();
                rendered += w.count;
                ring.store(w, &v);
            }
            rendered
        })
    }

    #[test]
    fn in_order_rewind_and_jump() {
        let ring = Arc::new(Ring::new(64, 16, 24, 10, None));
        let reader = spawn_reader(ring.clone());
        let mut out = Vec::new();
        for i in 10..200 {
            ring.fetch(i, &mut out).unwrap();
            assert_eq!(out, datagram(i));
        }
        // A rewind inside the history: served from the ring.
        for i in 170..180 {
            ring.fetch(i, &mut out).unwrap();
            assert_eq!(out, datagram(i));
        }
        // A rewind past the history and a jump ahead reposition the reader.
        for i in [20u64, 21, 22, 5000, 5001, 150] {
            ring.fetch(i, &mut out).unwrap();
            assert_eq!(out, datagram(i));
        }
        ring.stop();
        assert_eq!(ring.fetch(7, &mut out), Err(FetchError::Stopped));
        let rendered = reader.join().unwrap();
        // Bounded read-ahead: nowhere near rendering everything up to 5000.
        assert!(rendered < 600, "{rendered}");
    }

    #[test]
    fn reader_stops_at_the_end() {
        let ring = Arc::new(Ring::new(64, 16, 24, 0, Some(20)));
        let reader = spawn_reader(ring.clone());
        let mut out = Vec::new();
        for i in 0..20 {
            ring.fetch(i, &mut out).unwrap();
        }
        assert!(matches!(
            ring.fetch(20, &mut out),
            Err(FetchError::Reader(_))
        ));
        ring.stop();
        assert_eq!(reader.join().unwrap(), 20);
    }

    #[test]
    fn reader_error_reaches_the_sender() {
        let ring = Ring::new(8, 4, 8, 0, Some(100));
        ring.fail("disk on fire".into());
        let mut out = Vec::new();
        assert_eq!(
            ring.fetch(0, &mut out),
            Err(FetchError::Reader("disk on fire".into()))
        );
    }
}
