//! `scheduler`: named interval tasks and one-shot delayed tasks, each on its own tokio task,
//! all cancelled when the plugin's context is revoked (teardown). Bounded: at most
//! [`MAX_TASKS`] live tasks per plugin. (5-field cron schedules are not implemented yet.)

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use plugin_api::Capability;

use super::PluginError;
use super::context::PluginContext;

/// The most live scheduled tasks (interval and one-shot) per plugin.
pub const MAX_TASKS: usize = 1024;
/// The shortest interval.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// A plugin's live tasks.
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    live: Arc<AtomicUsize>,
    names: Arc<Mutex<HashSet<String>>>,
}

/// Decrements the live count when a task ends, however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The `scheduler` surface.
#[derive(Debug)]
pub struct Scheduler<'a> {
    pub(crate) ctx: &'a PluginContext,
}

impl Scheduler<'_> {
    fn slot(&self) -> Result<Slot, PluginError> {
        self.ctx.check(Capability::Scheduler)?;
        let live = &self.ctx.inner.scheduler.live;
        let ok = live.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < MAX_TASKS).then_some(n + 1)).is_ok();
        if ok {
            Ok(Slot(live.clone()))
        } else {
            Err(PluginError::Invalid(format!("at most {MAX_TASKS} scheduled tasks per plugin")))
        }
    }

    /// Runs `task` once after `delay` (unless the context is revoked first).
    pub fn after(&self, delay: Duration, task: impl Future<Output = ()> + Send + 'static) -> Result<(), PluginError> {
        let slot = self.slot()?;
        let revoked = self.ctx.inner.revoked.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                () = revoked.cancelled() => {}
                () = async { tokio::time::sleep(delay).await; task.await } => {}
            }
        });
        Ok(())
    }

    /// Runs `task` every `period` (the first run after one period), one run at a time, until
    /// the context is revoked. `name` is unique per plugin.
    pub fn every<F, Fut>(&self, name: &str, period: Duration, mut task: F) -> Result<(), PluginError>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if period < MIN_INTERVAL {
            return Err(PluginError::Invalid(format!("an interval is at least {MIN_INTERVAL:?}")));
        }
        let slot = self.slot()?;
        if !self.ctx.inner.scheduler.names.lock().insert(name.to_owned()) {
            return Err(PluginError::Invalid(format!("a scheduled task named `{name}` exists")));
        }
        let revoked = self.ctx.inner.revoked.clone();
        let names = self.ctx.inner.scheduler.names.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let _slot = slot;
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = revoked.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                tokio::select! {
                    () = revoked.cancelled() => break,
                    () = task() => {}
                }
            }
            names.lock().remove(&name);
        });
        Ok(())
    }

    /// How many tasks of this plugin are live.
    pub fn live(&self) -> usize {
        self.ctx.inner.scheduler.live.load(Ordering::SeqCst)
    }
}
