//! hyper's timer for client connections, with tokio timers reused within a worker.
//!
//! hyper's HTTP/1 server times each request head (`server.header_read_timeout`): it asks its
//! timer for a new sleep as it starts reading a head and drops it once the head is in. With
//! hyper-util's `TokioTimer` that is, per request, an allocation, a clock read, an insert into
//! the runtime's timer wheel under its lock and a removal under the lock again. Here a dropped
//! sleep goes back to a free list of its worker (`workers.rs`; each worker thread has one
//! runtime, whose timer driver its sleeps are registered with) still registered, and the next
//! head's sleep is that timer moved to its new, later deadline: for a registered tokio timer an
//! atomic store. A timer that reached its old deadline while on the list fires once, waking
//! the task that last polled it for nothing (a finished connection's task: a no-op), and is
//! registered afresh when reused. At most [`FREE_MAX`] wait per worker.
//!
//! Off the workers (other runtimes, tests) it is a plain tokio sleep: a free list is only safe
//! on a thread whose runtime outlives it.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// Most sleeps kept per worker: one per connection reading a head at the same moment is enough.
pub const FREE_MAX: usize = 512;

thread_local! {
    static FREE: RefCell<Vec<Pin<Box<tokio::time::Sleep>>>> = const { RefCell::new(Vec::new()) };
}

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct PooledTimer;

/// A sleep handed to hyper; back to its worker's free list when dropped.
struct PooledSleep {
    inner: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Taken on a worker thread (and so returned to its list).
    pooled: bool,
}

impl Future for PooledSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.get_mut().inner {
            Some(s) => s.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Sleep for PooledSleep {}

impl Drop for PooledSleep {
    fn drop(&mut self) {
        if let Some(s) = self.inner.take()
            && self.pooled
        {
            // `try_with`: during the thread's exit the list may be gone; the sleep is dropped then
            let _ = FREE.try_with(|f| {
                if let Ok(mut f) = f.try_borrow_mut()
                    && f.len() < FREE_MAX
                {
                    f.push(s);
                }
            });
        }
    }
}

impl PooledTimer {
    fn sleep_at(deadline: tokio::time::Instant) -> PooledSleep {
        if crate::workers::current() == 0 {
            return PooledSleep { inner: Some(Box::pin(tokio::time::sleep_until(deadline))), pooled: false };
        }
        let reused = FREE.with(|f| f.borrow_mut().pop());
        let inner = match reused {
            Some(mut s) => {
                s.as_mut().reset(deadline);
                s
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        PooledSleep { inner: Some(inner), pooled: true }
    }

    /// Sleeps waiting on this thread's free list.
    pub fn free() -> usize {
        FREE.with(|f| f.borrow().len())
    }
}

impl Timer for PooledTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(Self::sleep_at(tokio::time::Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(Self::sleep_at(deadline.into()))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<PooledSleep>() {
            Some(s) => match &mut s.get_mut().inner {
                Some(inner) => inner.as_mut().reset(new_deadline.into()),
                None => *sleep = self.sleep_until(new_deadline),
            },
            None => *sleep = self.sleep_until(new_deadline),
        }
    }

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a worker, a dropped sleep is reused with its new deadline: one still pending, one that
    /// fired while on the list, and one moved by `reset` all wake at their new deadline, neither
    /// early nor never; off the workers nothing is kept.
    #[test]
    fn reused_sleeps_keep_their_new_deadlines() {
        let workers = crate::workers::Workers::start(1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        workers.spawn(async move {
            let t = PooledTimer;
            let ms = Duration::from_millis;
            let waited = |s: Pin<Box<dyn Sleep>>| async move {
                let t0 = Instant::now();
                s.await;
                t0.elapsed()
            };
            // 1: a sleep dropped long before its deadline (as hyper drops one once a head is in)
            drop(t.sleep(Duration::from_secs(30)));
            let kept = PooledTimer::free();
            // 2: reused with an earlier deadline (a reset moves it either way)
            let e1 = waited(t.sleep(ms(60))).await;
            // 3: a sleep that fired and went back; reused once its old deadline is long past
            let fired = t.sleep(ms(10));
            tokio::time::sleep(ms(40)).await;
            drop(fired);
            tokio::time::sleep(ms(40)).await;
            let e2 = waited(t.sleep(ms(60))).await;
            // 4: moved later by hyper's `reset`
            let mut s = t.sleep(ms(10));
            t.reset(&mut s, Instant::now() + ms(80));
            let e3 = waited(s).await;
            // 5: with no worker-owned runtime nothing is pooled (checked on another thread)
            let off = std::thread::spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    drop(PooledTimer.sleep(Duration::from_millis(5)));
                    PooledTimer::free()
                })
            })
            .join()
            .unwrap();
            tx.send((kept, e1, e2, e3, off, PooledTimer::free())).unwrap();
        });
        let (kept, e1, e2, e3, off, free) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(kept, 1, "a dropped sleep waits on the list");
        for (e, want) in [(e1, 60), (e2, 60), (e3, 80)] {
            assert!(e >= Duration::from_millis(want - 5), "woke early: {e:?} for {want} ms");
            assert!(e < Duration::from_millis(want + 900), "woke late: {e:?} for {want} ms");
        }
        assert_eq!(off, 0);
        assert_eq!(free, 1, "one timer served every sleep here");
    }
}
