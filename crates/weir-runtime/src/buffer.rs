//! Fixed-size network buffers from a bounded pool.
//!
//! Every task owns one [`BufferPool`] for its output. A [`Buffer`] returns to its pool when
//! dropped, which happens once the consumer has decoded it. When all buffers are in flight,
//! [`BufferPool::request`] blocks: that is backpressure, and it bounds the memory of the
//! whole exchange to `pools x capacity x buffer_size`.

use crate::error::{Result, RuntimeError};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

struct PoolState {
    free: Vec<Vec<u8>>,
    created: usize,
    closed: bool,
    /// Threads waiting in `request`: a returned buffer wakes one only if there is one (a
    /// condition variable's notify is a system call even when nobody waits).
    waiters: usize,
    /// At most how many of those were notified and have not run yet: buffers returned
    /// meanwhile make no further system calls (a woken thread may wait a while for a
    /// core). Spurious wake-ups can only make it lower, which costs a system call, never a
    /// lost wake-up.
    notified: usize,
}

struct PoolInner {
    state: Mutex<PoolState>,
    available: Condvar,
    capacity: usize,
    buffer_size: usize,
    blocked_nanos: AtomicU64,
    max_in_use: AtomicU64,
    /// Called after a buffer came back (outside the pool's lock): a network input channel
    /// announces the freed buffer as credit to its sender.
    on_return: Option<ReturnHook>,
}

/// What a pool calls each time a buffer comes back.
pub type ReturnHook = Box<dyn Fn() + Send + Sync>;

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // A poisoned pool lock only means another thread panicked while holding it; the
        // state (a free list and counters) is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A bounded pool of equally sized buffers, allocated lazily up to its capacity.
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

impl BufferPool {
    /// A pool of at most `capacity` buffers of `buffer_size` bytes each.
    pub fn new(capacity: usize, buffer_size: usize) -> Self {
        Self::build(capacity, buffer_size, None)
    }

    /// A pool like [`Self::new`] that calls `on_return` after each buffer came back.
    pub fn with_return_hook(capacity: usize, buffer_size: usize, on_return: ReturnHook) -> Self {
        Self::build(capacity, buffer_size, Some(on_return))
    }

    fn build(capacity: usize, buffer_size: usize, on_return: Option<ReturnHook>) -> Self {
        BufferPool {
            inner: Arc::new(PoolInner {
                state: Mutex::new(PoolState {
                    free: Vec::new(),
                    created: 0,
                    closed: false,
                    waiters: 0,
                    notified: 0,
                }),
                available: Condvar::new(),
                capacity: capacity.max(1),
                buffer_size: buffer_size.max(64),
                blocked_nanos: AtomicU64::new(0),
                max_in_use: AtomicU64::new(0),
                on_return,
            }),
        }
    }

    /// Bytes per buffer.
    pub fn buffer_size(&self) -> usize {
        self.inner.buffer_size
    }

    /// Most buffers this pool may hand out at once.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Takes a free buffer, waiting while all are in flight. Fails once the pool is closed
    /// (the task is being cancelled).
    pub fn request(&self) -> Result<Buffer> {
        self.take(true)
    }

    /// Takes a free buffer if there is one, without waiting (`None` when all are in flight
    /// or the pool is closed).
    pub fn try_request(&self) -> Option<Buffer> {
        let mut st = self.inner.lock();
        if st.closed {
            return None;
        }
        let data = if let Some(mut b) = st.free.pop() {
            b.clear();
            b
        } else if st.created < self.inner.capacity {
            st.created += 1;
            Vec::with_capacity(self.inner.buffer_size)
        } else {
            return None;
        };
        let in_use = (st.created - st.free.len()) as u64;
        drop(st);
        self.inner.max_in_use.fetch_max(in_use, Ordering::Relaxed);
        Some(Buffer {
            data,
            pool: Some(self.inner.clone()),
        })
    }

    /// Takes a permit: a place in the pool, counted like a buffer in flight, for a batch of
    /// records handed over in memory ([`crate::typed`]). Waits while all are in flight, as
    /// [`Self::request`] does. A permit allocates no memory of its own (a free buffer of the
    /// pool may serve as one).
    pub fn request_permit(&self) -> Result<Buffer> {
        self.take(false)
    }

    fn take(&self, allocate: bool) -> Result<Buffer> {
        let mut st = self.inner.lock();
        let mut blocked_since: Option<Instant> = None;
        loop {
            if st.closed {
                return Err(RuntimeError::Cancelled);
            }
            let data = if let Some(mut b) = st.free.pop() {
                b.clear();
                Some(b)
            } else if st.created < self.inner.capacity {
                st.created += 1;
                // A permit's empty vector leaves the pool again when it comes back (the
                // pool keeps only vectors of full size), which keeps the count right.
                Some(if allocate {
                    Vec::with_capacity(self.inner.buffer_size)
                } else {
                    Vec::new()
                })
            } else {
                None
            };
            if let Some(data) = data {
                let in_use = (st.created - st.free.len()) as u64;
                drop(st);
                self.inner.max_in_use.fetch_max(in_use, Ordering::Relaxed);
                if let Some(since) = blocked_since {
                    self.inner
                        .blocked_nanos
                        .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
                }
                return Ok(Buffer {
                    data,
                    pool: Some(self.inner.clone()),
                });
            }
            blocked_since.get_or_insert_with(Instant::now);
            st.waiters += 1;
            st = self
                .inner
                .available
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
            st.waiters -= 1;
            st.notified = st.notified.saturating_sub(1);
        }
    }

    /// Closes the pool: waiting and future requests fail with [`RuntimeError::Cancelled`].
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.inner.available.notify_all();
    }

    /// Buffers currently handed out and not yet returned.
    pub fn in_use(&self) -> usize {
        let st = self.inner.lock();
        st.created - st.free.len()
    }

    /// The most buffers that were ever handed out at once.
    pub fn max_in_use(&self) -> usize {
        self.inner.max_in_use.load(Ordering::Relaxed) as usize
    }

    /// Total time writers spent waiting for a buffer (backpressure), in milliseconds.
    pub fn backpressured_ms(&self) -> u64 {
        self.inner.blocked_nanos.load(Ordering::Relaxed) / 1_000_000
    }
}

/// A byte buffer that goes back to its pool when dropped.
pub struct Buffer {
    data: Vec<u8>,
    pool: Option<Arc<PoolInner>>,
}

impl Buffer {
    /// A buffer that belongs to no pool (for tests and one-off messages).
    pub fn unpooled(data: Vec<u8>) -> Self {
        Buffer { data, pool: None }
    }
}

impl Deref for Buffer {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.data
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let mut data = std::mem::take(&mut self.data);
            // A frame written whole into a buffer can grow it past the buffer size; keep the
            // pool's memory bound by giving the excess back.
            if data.capacity() > 2 * pool.buffer_size {
                data.clear();
                data.shrink_to(pool.buffer_size);
            }
            let mut st = pool.lock();
            if data.capacity() >= pool.buffer_size {
                st.free.push(data);
            } else {
                // A permit's empty vector: its place in the pool is free again.
                st.created -= 1;
            }
            let wake = st.waiters > st.notified;
            if wake {
                st.notified += 1;
            }
            drop(st);
            if wake {
                pool.available.notify_one();
            }
            if let Some(hook) = &pool.on_return {
                hook();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pool_blocks_when_exhausted_and_wakes_on_return() {
        let pool = BufferPool::new(2, 128);
        let a = pool.request().unwrap();
        let _b = pool.request().unwrap();
        assert_eq!(pool.in_use(), 2);
        let p2 = pool.clone();
        let t = std::thread::spawn(move || p2.request().map(|b| b.capacity()));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "third request must wait");
        drop(a);
        assert!(t.join().unwrap().unwrap() >= 128);
        assert_eq!(pool.max_in_use(), 2);
    }

    #[test]
    fn permits_count_like_buffers() {
        let pool = BufferPool::new(2, 128);
        let permit = pool.request_permit().unwrap();
        assert_eq!(permit.capacity(), 0, "a permit allocates nothing");
        let _b = pool.request().unwrap();
        let p2 = pool.clone();
        let t = std::thread::spawn(move || p2.request_permit().map(|_| ()));
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !t.is_finished(),
            "a permit waits while the pool is exhausted"
        );
        drop(permit);
        t.join().unwrap().unwrap();
        assert_eq!(pool.in_use(), 1);
    }

    #[test]
    fn each_returned_buffer_wakes_another_waiter() {
        // Two threads wait; the first return notifies one of them, and the second return,
        // often made before either has run, must still wake the other one. A lost wake-up
        // shows as a timeout, not as a hang.
        for _ in 0..50 {
            let pool = BufferPool::new(2, 64);
            let (a, b) = (pool.request().unwrap(), pool.request().unwrap());
            let (tx, rx) = std::sync::mpsc::channel();
            for _ in 0..2 {
                let (p, tx) = (pool.clone(), tx.clone());
                std::thread::spawn(move || {
                    let got = p.request();
                    let _ = tx.send(got.is_ok());
                    // Hold the buffer until both waiters have one.
                    std::thread::sleep(Duration::from_millis(5));
                });
            }
            while pool.inner.lock().waiters < 2 {
                std::thread::sleep(Duration::from_micros(100));
            }
            drop(a);
            drop(b);
            for _ in 0..2 {
                assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
            }
        }
    }

    #[test]
    fn close_wakes_waiters_with_cancelled() {
        let pool = BufferPool::new(1, 64);
        let _a = pool.request().unwrap();
        let p2 = pool.clone();
        let t = std::thread::spawn(move || p2.request().err().map(|e| e.is_cancelled()));
        std::thread::sleep(Duration::from_millis(20));
        pool.close();
        assert_eq!(t.join().unwrap(), Some(true));
    }
}
