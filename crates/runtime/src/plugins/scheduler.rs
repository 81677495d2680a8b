//! `scheduler`: named interval tasks, named cron tasks (5-field, UTC: [`super::cron`]) and
//! one-shot delayed tasks, each on its own tokio task, all cancelled when the plugin's
//! context is revoked (teardown). Bounded: at most [`MAX_TASKS`] live tasks per plugin.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use plugin_api::Capability;

use super::PluginError;
use super::context::PluginContext;
use super::cron::Cron;

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

    /// Runs `task` at every minute `schedule` (a 5-field cron expression, UTC; see
    /// [`super::cron`]) matches, one run at a time, until the context is revoked. `name` is
    /// unique per plugin (shared with [`Scheduler::every`]). A run that overlaps the next
    /// matching minute skips it; a fire time is never run twice, even if the wall clock
    /// steps back.
    pub fn cron<F, Fut>(&self, name: &str, schedule: &str, task: F) -> Result<(), PluginError>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let cron = Cron::parse(schedule).map_err(|e| PluginError::Invalid(e.to_string()))?;
        self.cron_with_clock(name, cron, wall_clock, task)
    }

    /// [`Scheduler::cron`] with a given clock (Unix seconds), for tests.
    pub(crate) fn cron_with_clock<F, Fut>(
        &self,
        name: &str,
        cron: Cron,
        clock: fn() -> i64,
        mut task: F,
    ) -> Result<(), PluginError>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slot = self.slot()?;
        if !self.ctx.inner.scheduler.names.lock().insert(name.to_owned()) {
            return Err(PluginError::Invalid(format!("a scheduled task named `{name}` exists")));
        }
        let revoked = self.ctx.inner.revoked.clone();
        let names = self.ctx.inner.scheduler.names.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let _slot = slot;
            // The last fire time: the next one is after it and after now.
            let mut last = clock();
            loop {
                let now = clock();
                let Some(next) = cron.next_after(last.max(now)) else { break };
                let wait = Duration::from_secs(u64::try_from(next - now).unwrap_or(0));
                tokio::select! {
                    () = revoked.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
                last = next;
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

/// The system clock in Unix seconds (0 before 1970).
fn wall_clock() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use async_trait::async_trait;
    use plugin_api::{Format, Origin};
    use serde_json::Value;

    use super::super::cron::days_from_civil;
    use super::super::{ManifestSource, Plugin, Plugins};
    use super::*;

    struct Ticker;

    #[async_trait]
    impl Plugin for Ticker {
        fn name(&self) -> &str {
            "ticker"
        }
        fn manifest(&self, _config: Option<&Value>) -> ManifestSource {
            let text =
                r#"{"name": "ticker", "version": "0.1.0", "apiVersion": "1.0.0", "capabilities": ["scheduler"]}"#;
            ManifestSource { text: text.to_owned(), format: Format::Json }
        }
        async fn init(&self, _ctx: PluginContext) -> Result<(), PluginError> {
            Ok(())
        }
    }

    async fn ticker() -> (Plugins, PluginContext) {
        let policy = plugin_api::load_policy(
            r#"{"plugins": {"ticker": {"enabled": true, "grant": ["scheduler"]}}}"#,
            Format::Json,
        )
        .unwrap();
        let plugins = Plugins::load(&policy, vec![(Arc::new(Ticker), Origin::Builtin)]).await.unwrap();
        let ctx = plugins.context("ticker").unwrap();
        (plugins, ctx)
    }

    /// Monday 2026-11-23 18:45:30 UTC.
    fn start() -> i64 {
        days_from_civil(2026, 11, 23) * 86_400 + 18 * 3600 + 45 * 60 + 30
    }

    /// Unix seconds following tokio's clock (paused in these tests): `start()` plus the
    /// virtual time elapsed since the first call.
    fn virtual_clock() -> i64 {
        static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(tokio::time::Instant::now);
        start() + i64::try_from(origin.elapsed().as_secs()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_cron_task_fires_at_its_minutes_and_stops_at_teardown() {
        let (plugins, ctx) = ticker().await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let cron = Cron::parse("*/5 * * * *").unwrap();
        ctx.scheduler()
            .cron_with_clock("every-5", cron, virtual_clock, move || {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(virtual_clock());
                }
            })
            .unwrap();
        let at = |h: i64, m: i64| days_from_civil(2026, 11, 23) * 86_400 + h * 3600 + m * 60;
        for want in [at(18, 50), at(18, 55), at(19, 0)] {
            assert_eq!(rx.recv().await.unwrap(), want);
        }
        assert_eq!(ctx.scheduler().live(), 1);
        // Names are shared with `every`; a bad expression is an invalid argument.
        let dup = ctx.scheduler().cron("every-5", "* * * * *", || async {}).unwrap_err();
        assert_eq!(dup.reason(), "invalid_argument");
        let bad = ctx.scheduler().cron("bad", "61 * * * *", || async {}).unwrap_err();
        assert!(bad.to_string().contains("minute 61"), "{bad}");
        plugins.teardown().await;
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(rx.try_recv().is_err(), "no run after teardown");
        assert_eq!(ctx.scheduler().live(), 0);
    }
}
